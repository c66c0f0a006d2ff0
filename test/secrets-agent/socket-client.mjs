// A caller that lives in a pod's cgroup: reads one JSON request per stdin line, sends it to
// the agent's socket from this process (so SO_PEERCRED names this pid) and writes one JSON
// answer per stdout line: {id, status, body}. A watch request streams {id, line} per NDJSON line.
// The test never prints what this process writes: it holds secret values.
import http from 'node:http';
import { createInterface } from 'node:readline';

const socketPath = process.argv[2];
const agent = new http.Agent({ keepAlive: true });
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');

createInterface({ input: process.stdin }).on('line', (text) => {
  const r = JSON.parse(text);
  const headers = { ...(r.headers ?? {}) };
  if (r.token) headers.authorization = `Bearer ${r.token}`;
  if (r.container) headers['x-nemutator-container'] = r.container;
  if (r.body !== undefined) headers['content-type'] = 'application/json';
  if (r.raw !== undefined) {
    // Garbage straight onto the socket.
    import('node:net').then(({ connect }) => {
      const s = connect(socketPath, () => s.end(Buffer.from(r.raw, 'base64')));
      let data = '';
      s.on('data', (d) => (data += d));
      s.on('close', () => out({ id: r.id, status: Number(/^HTTP\/1\.1 (\d+)/.exec(data)?.[1] ?? 0), body: data.slice(data.indexOf('\r\n\r\n') + 4) }));
      s.on('error', (e) => out({ id: r.id, status: 0, error: e.code }));
    });
    return;
  }
  const req = http.request({ socketPath, path: r.path, method: r.method ?? 'GET', headers, agent: r.watch ? undefined : agent }, (res) => {
    if (r.watch) {
      out({ id: r.id, status: res.statusCode, watching: true });
      let buf = '';
      res.on('data', (d) => {
        buf += d;
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          if (line.trim()) out({ id: r.id, line: JSON.parse(line) });
        }
      });
      res.on('end', () => out({ id: r.id, ended: true }));
      return;
    }
    let data = '';
    res.on('data', (d) => (data += d));
    res.on('end', () => {
      let body = data;
      try {
        body = data ? JSON.parse(data) : null;
      } catch {
        // not JSON: kept as text
      }
      out({ id: r.id, status: res.statusCode, body });
    });
  });
  req.on('error', (e) => out({ id: r.id, status: 0, error: e.code }));
  if (r.body !== undefined) req.end(typeof r.body === 'string' ? r.body : JSON.stringify(r.body));
  else req.end();
});
