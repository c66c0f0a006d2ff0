// The bench's pod-side load, run inside a pod cgroup (the agent identifies callers by it).
//   reads <socket> <token> <container> <concurrency> <ms>   → {"count":N}
//   watch <socket> <token> <container> <n>                  → "ready", then per version {"version","first","last"} once all n got it
import http from 'node:http';
import { performance } from 'node:perf_hooks';

const [mode, socketPath, token, container, a, b] = process.argv.slice(2);
const headers = { authorization: `Bearer ${token}`, 'x-nemutator-container': container };
const now = () => performance.timeOrigin + performance.now();

if (mode === 'reads') {
  const agent = new http.Agent({ keepAlive: true, maxSockets: Number(a) });
  const end = Date.now() + Number(b);
  let count = 0;
  let errors = 0;
  const one = () =>
    new Promise((resolve) => {
      const req = http.get({ socketPath, path: '/v1/secrets', headers, agent }, (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode === 200) count++;
          else errors++;
          resolve();
        });
      });
      req.on('error', () => {
        errors++;
        resolve();
      });
    });
  await Promise.all(
    Array.from({ length: Number(a) }, async () => {
      while (Date.now() < end) await one();
    }),
  );
  console.log(JSON.stringify({ count, errors }));
  process.exit(0);
}

if (mode === 'watch') {
  const n = Number(a);
  const seen = new Map();
  let open = 0;
  for (let i = 0; i < n; i++) {
    const req = http.get({ socketPath, path: '/v1/secrets/watch', headers, agent: false }, (res) => {
      if (res.statusCode !== 200) {
        console.log(JSON.stringify({ error: res.statusCode }));
        process.exit(1);
      }
      if (++open === n) console.log('ready');
      let buf = '';
      res.on('data', (d) => {
        buf += d;
        let k;
        while ((k = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, k);
          buf = buf.slice(k + 1);
          if (!line.trim()) continue;
          const t = now();
          const version = JSON.parse(line).version;
          const s = seen.get(version) ?? { count: 0, first: t, last: t };
          s.count++;
          s.last = t;
          seen.set(version, s);
          if (s.count === n) console.log(JSON.stringify({ version, first: s.first, last: s.last }));
        }
      });
    });
    req.on('error', (e) => {
      console.log(JSON.stringify({ error: e.code }));
      process.exit(1);
    });
  }
}
