// Load generator, run in its own process so it does not share an event loop with the server
// under test. Modes: `closed` (fixed concurrency, as fast as answers come: throughput) and
// `open` (fixed arrival rate: latency at that rate, measured from the scheduled send time).
// Reports over IPC: { done, errors, seconds, latenciesMs[], cpuSeconds (its own) }.
import { Agent, request } from 'node:https';

interface Job {
  url: string;
  mode: 'closed' | 'open';
  concurrency: number;
  rate: number;
  durationMs: number;
  bodies: string[];
  /**
   * Before the measured window: this long at a fixed concurrency of `warmSockets` on the same
   * keep-alive agent, so the window starts on open TLS connections, as kube-apiserver keeps
   * them to a webhook, and measures reviews rather than handshakes.
   */
  warmupMs?: number;
  warmSockets?: number;
}

function post(agent: Agent, u: URL, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: u.hostname,
        port: u.port,
        path: u.pathname,
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        let n = 0;
        res.on('data', (d: Buffer) => (n += d.length));
        res.on('end', () => (res.statusCode === 200 && n > 0 ? resolve(n) : reject(new Error(`status ${res.statusCode}`))));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function run(job: Job): Promise<{ done: number; errors: number; seconds: number; latenciesMs: number[]; cpuSeconds: number }> {
  const agent = new Agent({ keepAlive: true, rejectUnauthorized: false, maxSockets: Math.max(job.concurrency, 64) });
  const u = new URL(job.url);
  const latencies: number[] = [];
  let done = 0;
  let errors = 0;
  let i = 0;
  const next = () => job.bodies[i++ % job.bodies.length]!;
  if (job.warmupMs) {
    const until = performance.now() + job.warmupMs;
    await Promise.all(
      Array.from({ length: job.warmSockets ?? 8 }, async () => {
        while (performance.now() < until) await post(agent, u, next()).catch(() => undefined);
      }),
    );
  }
  // The parent measures the server's CPU from this message on: the warm-up stays outside.
  process.send!({ measuring: true });
  const cpu0 = process.cpuUsage();
  const started = performance.now();
  const end = started + job.durationMs;
  if (job.mode === 'closed') {
    await Promise.all(
      Array.from({ length: job.concurrency }, async () => {
        while (performance.now() < end) {
          const t = performance.now();
          try {
            await post(agent, u, next());
            done++;
            latencies.push(performance.now() - t);
          } catch {
            errors++;
          }
        }
      }),
    );
  } else {
    const interval = 1000 / job.rate;
    const pending: Promise<void>[] = [];
    for (let k = 0; ; k++) {
      const scheduled = started + k * interval;
      if (scheduled >= end) break;
      // Timers have millisecond granularity and can fire early against performance.now()
      // (libuv's loop time is cached): sleep to within a millisecond, then yield until the
      // scheduled time, so no request leaves early and no latency comes out negative.
      const wait = scheduled - performance.now();
      if (wait > 1.5) await new Promise((r) => setTimeout(r, wait - 1));
      while (performance.now() < scheduled) await new Promise((r) => setImmediate(r));
      pending.push(
        post(agent, u, next()).then(
          () => {
            done++;
            latencies.push(performance.now() - scheduled);
          },
          () => {
            errors++;
          },
        ),
      );
    }
    await Promise.all(pending);
  }
  const seconds = (performance.now() - started) / 1000;
  agent.destroy();
  const cpu = process.cpuUsage(cpu0);
  return { done, errors, seconds, latenciesMs: latencies, cpuSeconds: (cpu.user + cpu.system) / 1e6 };
}

process.on('message', (job: Job) => {
  void run(job).then((r) => {
    process.send!(r);
  });
});
