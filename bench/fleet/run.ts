// bench/fleet: one controller and many simulated agents (one process, many sockets)
// reporting every 10 s. Reports controller CPU, RSS and p99 time from frame arrival to
// registry update, against the same controller idle (baseline) measured in the same run.
// Targets (issue 5): ≤ 0.5 core, ≤ 500 MiB, p99 ≤ 50 ms with 2,000 agents.
// BENCH_FLEET_AGENTS (default 2000), BENCH_FLEET_SECONDS (default 60) shorten it.
import { type ChildProcess, fork } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, release, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { parseAllDocuments } from 'yaml';

import { encodeEnvelope, type INodeReport } from '#proto/codec.js';

import { compileForNode } from '../lib/compile.ts';
import { writeSection } from '../lib/results.ts';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

const AGENTS = Number(process.env.BENCH_FLEET_AGENTS ?? 2000);
const SECONDS = Number(process.env.BENCH_FLEET_SECONDS ?? 60);
const INTERVAL_MS = 10_000;
const IDLE_SECONDS = Math.min(20, SECONDS);

/** NODE_OPTIONS of the controller container in manifests/controller/deployment.yaml. */
function deploymentNodeOptions(): string {
  const file = join(REPO, 'manifests', 'controller', 'deployment.yaml');
  for (const doc of parseAllDocuments(readFileSync(file, 'utf8'))) {
    const d = doc.toJS() as {
      kind?: string;
      spec?: { template?: { spec?: { containers?: Array<{ name: string; env?: Array<{ name: string; value?: string }> }> } } };
    };
    const env = d.kind === 'Deployment' ? d.spec?.template?.spec?.containers?.find((c) => c.name === 'controller')?.env : undefined;
    const value = env?.find((e) => e.name === 'NODE_OPTIONS')?.value;
    if (value !== undefined) return value;
  }
  throw new Error(`${file} gives the controller container no NODE_OPTIONS; the bench runs the controller as deployed`);
}

function ask<T>(child: ChildProcess, type: string, reply: string): Promise<T> {
  return new Promise((resolve) => {
    const on = (m: { type: string }) => {
      if (m.type === reply) {
        child.off('message', on);
        resolve(m as T);
      }
    };
    child.on('message', on);
    child.send({ type });
  });
}

/** A realistic report: 30 pods of 2 containers each. */
function reportFor(node: string, seq: number): INodeReport {
  return {
    nodeName: node,
    timeUnixMs: Date.now(),
    seq,
    collectMs: 12,
    node: {
      cpuCores: 16,
      cpuUsageCores: 5.2,
      cpuCoreUsage: Array.from({ length: 16 }, () => 0.3),
      load1: 4,
      memoryTotalBytes: 64 * 2 ** 30,
      memoryUsedBytes: 40 * 2 ** 30,
      cpuPressure: { someAvg10: 1.2 },
    },
    pods: Array.from({ length: 30 }, (_, p) => ({
      uid: `00000000-0000-0000-0000-${String(p).padStart(12, '0')}`,
      namespace: 'default',
      name: `app-${p}`,
      qos: 'burstable',
      containers: Array.from({ length: 2 }, (_, c) => ({
        id: `${p}${c}`.padEnd(64, 'a'),
        name: `c${c}`,
        runtime: 'containerd',
        cpuUsageCores: 0.1,
        cpuUsageSecondsTotal: 1000 + p,
        memoryWorkingSetBytes: 200 * 2 ** 20,
      })),
    })),
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pct = (xs: number[], q: number) => (xs.length ? xs.slice().sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]! : NaN);

// The controller runs as plain JavaScript, as `npm run build` ships it: under tsx the loader
// and its transform cache would add tens of MiB to every RSS sample.
const work = mkdtempSync(join(tmpdir(), 'nemu-bench-fleet-js-'));
const [controllerJs] = await compileForNode(REPO, ['bench/fleet/controller.ts'], work);
// With the Node options the Deployment gives the controller (its heap cap), as in a cluster.
const nodeOptions = deploymentNodeOptions();
// execArgv: [] — not the loader this bench runs under (tsx): the image runs plain node.
const child = fork(controllerJs!, [], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env: { ...process.env, NODE_OPTIONS: nodeOptions } });
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
const { fleetUrl, caPem } = await new Promise<{ fleetUrl: string; caPem: string }>((r) =>
  child.once('message', (m) => r(m as { fleetUrl: string; caPem: string })),
);

// Baseline: the same controller, idle.
await ask(child, 'mark', 'marked');
await sleep(IDLE_SECONDS * 1000);
const idle = await ask<{ cores: number; rssBytes: number; peakRssBytes: number }>(child, 'stats', 'stats');
console.log(`idle controller: ${(idle.cores * 100).toFixed(2)} % of a core, RSS ${(idle.rssBytes / 2 ** 20).toFixed(1)} MiB`);

// Connect the fleet, a few at a time (TLS handshakes are the expensive part).
const sockets: WebSocket[] = [];
const frames = Array.from({ length: 8 }, (_, i) => encodeEnvelope({ report: reportFor('x', i) }));
let failed = 0;
const t0 = performance.now();
for (let i = 0; i < AGENTS; i += 50) {
  await Promise.all(
    Array.from({ length: Math.min(50, AGENTS - i) }, (_, k) => {
      const node = `node-${String(i + k).padStart(5, '0')}`;
      const ws = new WebSocket(fleetUrl, { ca: caPem, perMessageDeflate: false });
      sockets.push(ws);
      return new Promise<void>((resolve) => {
        ws.once('open', () =>
          ws.send(encodeEnvelope({ hello: { protocolVersion: 1, nodeName: node, agentVersion: 'bench', token: 'bench-agent', instanceId: node } })),
        );
        ws.once('message', () => resolve()); // Welcome
        ws.once('error', () => {
          failed++;
          resolve();
        });
      });
    }),
  );
}
const connectSeconds = (performance.now() - t0) / 1000;
console.log(`${sockets.length - failed} agents connected in ${connectSeconds.toFixed(1)} s (${failed} failed)`);

// Each agent reports every 10 s, spread evenly over the interval.
await ask(child, 'mark', 'marked');
const timers = sockets.map((ws, i) =>
  setTimeout(
    () => {
      const send = () => ws.readyState === WebSocket.OPEN && ws.send(frames[i % frames.length]!);
      send();
      timers[i] = setInterval(send, INTERVAL_MS) as unknown as NodeJS.Timeout;
    },
    (i * INTERVAL_MS) / sockets.length,
  ),
);
await sleep(SECONDS * 1000);
const busy = await ask<{ cores: number; rssBytes: number; peakRssBytes: number; latencies: number[]; connected: number }>(child, 'stats', 'stats');
timers.forEach((t) => clearInterval(t));
sockets.forEach((s) => s.terminate());
await new Promise<void>((r) => {
  child.once('exit', () => r());
  child.send({ type: 'stop' });
});

const p50 = pct(busy.latencies, 0.5);
const p99 = pct(busy.latencies, 0.99);
const mib = (b: number) => (b / 2 ** 20).toFixed(1);
const ok = (good: boolean) => (good ? 'met' : '**missed**');
console.log(
  `busy: ${(busy.cores * 100).toFixed(1)} % of a core, RSS ${mib(busy.rssBytes)} MiB (peak ${mib(busy.peakRssBytes)}), ${busy.latencies.length} reports, p50 ${p50.toFixed(3)} ms, p99 ${p99.toFixed(3)} ms`,
);

writeSection(
  'fleet',
  [
    `One controller (its own process, running the transpiled JavaScript as \`npm run build\` ships it, with the Deployment's NODE_OPTIONS \`${nodeOptions}\`) and ${AGENTS} simulated agents in one process, each on its own WSS connection, sending a NodeReport of 30 pods × 2 containers (${frames[0]!.byteLength} bytes) every 10 s, spread evenly; measured over ${SECONDS} s after all connected. Baseline: the same controller idle for ${IDLE_SECONDS} s in the same run. Latency: from the frame's arrival at the controller (ws 'message') to the registry holding the decoded report. \`npx tsx bench/fleet/run.ts\` (BENCH_FLEET_AGENTS, BENCH_FLEET_SECONDS).`,
    '',
    `Machine: nproc ${cpus().length}, kernel ${release()}, Node ${process.version}, ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC. Note: the ${AGENTS} simulated agents share the same 2 cores.`,
    '',
    '| controller | CPU (cores) | RSS at the end (MiB) | peak RSS (MiB) | reports | p50 (ms) | p99 (ms) |',
    '|---|---:|---:|---:|---:|---:|---:|',
    `| idle (baseline) | ${idle.cores.toFixed(3)} | ${mib(idle.rssBytes)} | ${mib(idle.peakRssBytes)} | 0 | – | – |`,
    `| ${busy.connected} agents | ${busy.cores.toFixed(3)} | ${mib(busy.rssBytes)} | ${mib(busy.peakRssBytes)} | ${busy.latencies.length} | ${p50.toFixed(3)} | ${p99.toFixed(3)} |`,
    '',
    `Connecting ${AGENTS} agents (TLS + Hello + Welcome) took ${connectSeconds.toFixed(1)} s. Targets: ≤ 0.5 core (${busy.cores.toFixed(3)}: ${ok(busy.cores <= 0.5)}), ≤ 500 MiB (peak, connecting included: ${mib(busy.peakRssBytes)}: ${ok(busy.peakRssBytes <= 500 * 2 ** 20)}), p99 ≤ 50 ms (${p99.toFixed(3)}: ${ok(p99 <= 50)}).`,
  ].join('\n'),
);
process.exit(0);
