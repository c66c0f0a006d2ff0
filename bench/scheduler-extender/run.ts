// bench/scheduler-extender: the latency of one prioritize call for 5,000 candidate nodes over
// the real HTTPS path (mTLS, keep-alive, as kube-scheduler's extender client calls it: one
// request at a time), against a bare Node HTTPS server with the same TLS that reads the same
// body and answers `[]`, measured in the same run, request for request in turn.
// Target (issue 17): p99 ≤ 50 ms for 5,000 nodes, well under kube-scheduler's 5 s httpTimeout.
// BENCH_SCHED_NODES (default 5000), BENCH_SCHED_REQUESTS (default 400) change it;
// BENCH_SCHED_NODE_FLAGS passes Node flags to the controller (e.g. "--cpu-prof --cpu-prof-dir=DIR").
import { fork } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { cpus, loadavg, release, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { compileForNode } from '../lib/compile.ts';
import { writeSection } from '../lib/results.ts';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const NODES = Number(process.env.BENCH_SCHED_NODES ?? 5000);
const REQUESTS = Number(process.env.BENCH_SCHED_REQUESTS ?? 400);
const NODE_LIST_REQUESTS = Math.max(10, Math.round(REQUESTS / 10));

interface Ready {
  schedulerUrl: string;
  baselineUrl: string;
  caPem: string;
  certPem: string;
  keyPem: string;
  nodes: number;
}

// The controller as plain JavaScript, as `npm run build` ships it (tsx would add its loader's work and memory).
const [server] = await compileForNode(REPO, ['bench/scheduler-extender/server.ts'], mkdtempSync(join(tmpdir(), 'nemu-bench-sched-')));
const child = fork(server!, [], {
  // BENCH_SCHED_NODE_FLAGS: Node flags for the controller (e.g. --cpu-prof to see where a call's time goes).
  execArgv: (process.env.BENCH_SCHED_NODE_FLAGS ?? '').split(' ').filter((f) => f !== ''),
  stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  env: { ...process.env, BENCH_SCHED_NODES: String(NODES) },
});
const ready = await new Promise<Ready>((r) => child.once('message', (m) => r(m as Ready)));
const ask = <T>(type: string): Promise<T> =>
  new Promise((r) => {
    child.once('message', (m) => r(m as T));
    child.send({ type });
  });

const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: ready.caPem, cert: ready.certPem, key: ready.keyPem });
function post(url: string, body: string): Promise<{ ms: number; status: number; text: string }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ ms: performance.now() - started, status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const fixture = (name: string) =>
  JSON.parse(readFileSync(join(REPO, 'test/fixtures/scheduler', name), 'utf8')) as Record<string, unknown> & { Pod: { metadata: Record<string, unknown> } };
const names = Array.from({ length: NODES }, (_, i) => `node-${i}`);
const namesArgs = fixture('args-nodenames.json');
const nodesArgs = fixture('args-nodes.json');
const nodeTemplate = (nodesArgs.Nodes as { items: Array<Record<string, unknown>> }).items[0]!;
/** The fixture's pod (a new name each time, as a burst of replicas), with the candidates in the given form. */
function body(i: number, form: 'NodeNames' | 'Nodes'): string {
  const Pod = { ...namesArgs.Pod, metadata: { ...namesArgs.Pod.metadata, name: `web-7d4b9c6f5-b${i}`, uid: `uid-b${i}` } };
  if (form === 'NodeNames') return JSON.stringify({ Pod, Nodes: null, NodeNames: names });
  const items = names.map((n) => ({ ...nodeTemplate, metadata: { ...(nodeTemplate.metadata as object), name: n } }));
  return JSON.stringify({ Pod, Nodes: { metadata: {}, items }, NodeNames: null });
}

const pct = (xs: number[], q: number) => xs.slice().sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]!;

async function measure(form: 'NodeNames' | 'Nodes', n: number): Promise<{ ext: number[]; base: number[]; bytes: number; cpuMicros: number }> {
  for (let i = 0; i < Math.min(30, n); i++) {
    await post(`${ready.schedulerUrl}/prioritize`, body(-i - 1, form));
    await post(ready.baselineUrl, body(-i - 1, form));
  }
  const ext: number[] = [];
  const base: number[] = [];
  let bytes = 0;
  await ask('mark');
  for (let i = 0; i < n; i++) {
    const b = body(i, form);
    bytes = Buffer.byteLength(b);
    const r = await post(`${ready.schedulerUrl}/prioritize`, b);
    const scores = JSON.parse(r.text) as Array<{ Host: string; Score: number }>;
    if (r.status !== 200 || scores.length !== NODES || !scores.every((s) => Number.isInteger(s.Score)))
      throw new Error(`prioritize answered ${r.status} with ${scores.length} scores`);
    ext.push(r.ms);
    base.push((await post(ready.baselineUrl, b)).ms);
  }
  const { micros } = await ask<{ micros: number }>('cpu');
  return { ext, base, bytes, cpuMicros: micros };
}

const byNames = await measure('NodeNames', REQUESTS);
const { ms: computed, cpuMicros: computeCpu } = await new Promise<{ ms: number[]; cpuMicros: number }>((r) => {
  child.once('message', (m) => r(m as { ms: number[]; cpuMicros: number }));
  child.send({ type: 'compute', n: REQUESTS });
});
const load = loadavg()[0]!;
const byNodes = await measure('Nodes', NODE_LIST_REQUESTS);
child.send({ type: 'stop' });

const row = (what: string, xs: number[]) =>
  `| ${what} | ${xs.length} | ${pct(xs, 0.5).toFixed(2)} | ${pct(xs, 0.99).toFixed(2)} | ${Math.max(...xs).toFixed(2)} |`;
const p99 = pct(byNames.ext, 0.99);
const when = new Date().toISOString().replace('T', ' ').slice(0, 16);
const text = `
One prioritize call for ${NODES} candidate nodes over the real HTTPS path: the controller in its own process (compiled JavaScript, as \`npm run build\` ships it) with ${NODES} nodes in its fleet registry, each with a NodeReport of 30 pods, a tenth of them replaced every second (agents report every 10 s); kube-scheduler's request is the fixture pod (test/fixtures/scheduler) under a new name each time, so every call also adds an anti-herding placement. One request at a time on a keep-alive mTLS connection, as kube-scheduler's extender client sends them. Baseline: a bare Node HTTPS server in the same process, same certificates and client-certificate check, reading the same body and answering \`[]\`, called in turn with the extender (request for request). \`npx tsx bench/scheduler-extender/run.ts\` (BENCH_SCHED_NODES, BENCH_SCHED_REQUESTS).

Machine: nproc ${cpus().length}, kernel ${release()}, Node ${process.version}, ${when} UTC, load average ${load.toFixed(1)} (other work on the machine: wall times include waiting for a core). The load process shares the same cores.

| request | requests | p50 (ms) | p99 (ms) | max (ms) |
|---|---:|---:|---:|---:|
${row(`baseline, NodeNames body (${(byNames.bytes / 1024).toFixed(0)} KiB)`, byNames.base)}
${row('prioritize, NodeNames (nodeCacheCapable: true)', byNames.ext)}
${row('prioritize() alone, in the controller process (no HTTP, JSON, TLS)', computed)}
${row(`baseline, Nodes body (${(byNodes.bytes / 2 ** 20).toFixed(1)} MiB)`, byNodes.base)}
${row('prioritize, Nodes (whole Node objects)', byNodes.ext)}

Ratios to the same-run baseline (p50): NodeNames ${(pct(byNames.ext, 0.5) / pct(byNames.base, 0.5)).toFixed(1)} ×, Nodes ${(pct(byNodes.ext, 0.5) / pct(byNodes.base, 0.5)).toFixed(1)} ×. Controller CPU per NodeNames call (extender and baseline together, HTTP, TLS and JSON included): ${(byNames.cpuMicros / byNames.ext.length / 1000).toFixed(1)} ms; prioritize() alone: ${(computeCpu / computed.length / 1000).toFixed(1)} ms of CPU per call (CPU time, which other load inflates less than wall time).

Target: p99 ≤ 50 ms for 5,000 nodes with nodeCacheCapable (${p99.toFixed(2)} ms: ${NODES === 5000 ? (p99 <= 50 ? 'met' : '**missed**') : 'not measured at 5,000 nodes'}). Without nodeCacheCapable kube-scheduler sends every Node object; docs/scheduler.md recommends nodeCacheCapable: true.
`;
writeSection('scheduler-extender', text);
console.log(text);
process.exit(0);
