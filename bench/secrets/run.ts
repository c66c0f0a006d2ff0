// bench/secrets: the node secrets socket against a bare HTTP server on a unix socket
// measured in the same run (same client, same machine moment):
//   - cached reads per second (GET /v1/secrets, keep-alive, concurrent) — target ≥ 5,000/s
//   - forced rotation → the last of 1,000 watchers has the new version — target p99 ≤ 1 s
//   - agent memory per open watcher
// The agent side is the real one (identity by SO_PEERCRED + cgroup + token, Vault double via
// node-vault); the load runs in a process inside a pod-shaped cgroup, as a pod would.
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

import { buildNative } from '#test/harness/build-native.js';
import { type PodCgroup, spawnInCgroup } from '#test/harness/cgroup.js';
import { startWorld } from '#test/secrets-agent/world.js';

import { writeSection } from '../lib/results.ts';
// @ts-expect-error plain ESM helper without types
import { startBaseline } from './baseline.mjs';

const CLIENT = fileURLToPath(new URL('./client.mjs', import.meta.url));
const WATCHERS = Number(process.env.BENCH_WATCHERS ?? 1000);
const ROTATIONS = Number(process.env.BENCH_ROTATIONS ?? 20);
const READ_MS = 3000;
const CONCURRENCY = 32;

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const heap = () => {
  gc();
  gc();
  const m = process.memoryUsage();
  return { heap: m.heapUsed + m.external + m.arrayBuffers, rss: m.rss };
};

function start(cg: PodCgroup, args: string[]): { child: ChildProcess; lines: AsyncIterator<string> } {
  const child = spawnInCgroup(cg, process.execPath, [CLIENT, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  return { child, lines };
}

async function nextJson(lines: AsyncIterator<string>): Promise<Record<string, number>> {
  const r = await lines.next();
  if (r.done) throw new Error('the bench client ended early');
  return JSON.parse(r.value) as Record<string, number>;
}

async function reads(cg: PodCgroup, socket: string, token: string): Promise<number> {
  const { lines } = start(cg, ['reads', socket, token, 'app', String(CONCURRENCY), String(READ_MS)]);
  const r = await nextJson(lines);
  if (r.errors) throw new Error(`${r.errors} reads failed against ${socket}`);
  return r.count! / (READ_MS / 1000);
}

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!;
}

async function main(): Promise<void> {
  await buildNative();
  const world = await startWorld({ rotationInterval: 3_600_000, maxStaleness: 3_600_000 });
  const baselineSocket = join(world.dir, 'baseline.sock');
  try {
    world.vault.put('secret/app/db', { password: 'bench-value-1', user: 'bench' });
    const pod = await world.pod({
      name: 'bench-1',
      annotation: {
        v: 1,
        role: 'app',
        containers: { app: { env: { DB_PASSWORD: 'vault:secret/app/db#password', DB_USER: 'vault:secret/app/db#user' } } },
        files: { 'db.pass': 'vault:secret/app/db#password' },
      },
    });
    const token = await pod.token();
    const warm = await (await pod.client()).request({ path: '/v1/secrets', token, container: 'app' });
    if (warm.status !== 200) throw new Error(`warm-up read failed: ${JSON.stringify(warm.body)}`);
    const baseline = await startBaseline(
      baselineSocket,
      JSON.stringify({
        env: { DB_PASSWORD: { value: 'x'.repeat(13), version: 1, path: 'secret/app/db' }, DB_USER: { value: 'bench', version: 1, path: 'secret/app/db' } },
        files: { 'db.pass': { value: 'x'.repeat(13), version: 1, path: 'secret/app/db' } },
      }),
    );

    // Reads: alternate to spread machine noise over both.
    const agentReads: number[] = [];
    const baseReads: number[] = [];
    for (let i = 0; i < 3; i++) {
      baseReads.push(await reads(pod.cg, baselineSocket, token));
      agentReads.push(await reads(pod.cg, world.socketPath, token));
    }
    const agentRps = Math.max(...agentReads);
    const baseRps = Math.max(...baseReads);
    console.log(`reads/s: agent ${agentRps.toFixed(0)}, baseline ${baseRps.toFixed(0)}`);

    // Watchers: the baseline first, then the agent (memory, then rotations).
    const bBefore = heap();
    const bwatch = start(pod.cg, ['watch', baselineSocket, token, 'app', String(WATCHERS)]);
    if ((await bwatch.lines.next()).value !== 'ready') throw new Error('baseline watchers did not open');
    await new Promise((r) => setTimeout(r, 500));
    const bAfter = heap();
    const baseHeapPer = (bAfter.heap - bBefore.heap) / WATCHERS;
    const baseLat: number[] = [];
    for (let v = 2; v < 2 + ROTATIONS; v++) {
      const t0 = performance.timeOrigin + performance.now();
      baseline.broadcast(
        JSON.stringify({ path: 'secret/app/db', version: v, env: { DB_PASSWORD: { value: 'x'.repeat(13), version: v, path: 'secret/app/db' } }, files: {} }),
      );
      const got = await nextJson(bwatch.lines);
      baseLat.push(got.last! - t0);
    }
    bwatch.child.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 500));
    const before = heap();
    const watch = start(pod.cg, ['watch', world.socketPath, token, 'app', String(WATCHERS)]);
    const opened = (await watch.lines.next()).value as string;
    if (opened !== 'ready') throw new Error(`agent watchers did not open: ${opened}`);
    await new Promise((r) => setTimeout(r, 500));
    const after = heap();
    const agentHeapPer = (after.heap - before.heap) / WATCHERS;
    const agentRssPer = (after.rss - before.rss) / WATCHERS;
    const agentLat: number[] = [];
    for (let v = 2; v < 2 + ROTATIONS; v++) {
      world.vault.put('secret/app/db', { password: `bench-value-${v}`, user: 'bench' });
      const t0 = performance.timeOrigin + performance.now();
      const r = await world.secrets.handlers.rotate({ rotate: { path: 'secret/app/db' } });
      if (r.rotate!.watchersNotified !== WATCHERS) throw new Error(`rotation notified ${r.rotate!.watchersNotified} of ${WATCHERS} watchers`);
      const got = await nextJson(watch.lines);
      agentLat.push(got.last! - t0);
    }
    watch.child.kill('SIGKILL');

    await baseline.stop();

    const p = (xs: number[], q: number) => quantile(xs, q).toFixed(1);
    const rows = [
      `| cached reads per second (GET /v1/secrets, ${CONCURRENCY} keep-alive connections, ${READ_MS / 1000} s, best of 3) | ${agentRps.toFixed(0)} | ${baseRps.toFixed(0)} | ${(agentRps / baseRps).toFixed(2)} | ≥ 5,000/s: ${agentRps >= 5000 ? 'met' : 'missed'} |`,
      `| forced rotation → last of ${WATCHERS} watchers, p50 (ms, ${ROTATIONS} rotations) | ${p(agentLat, 0.5)} | ${p(baseLat, 0.5)} | ${(quantile(agentLat, 0.5) / quantile(baseLat, 0.5)).toFixed(1)} | |`,
      `| forced rotation → last of ${WATCHERS} watchers, p99 (ms) | ${p(agentLat, 0.99)} | ${p(baseLat, 0.99)} | ${(quantile(agentLat, 0.99) / quantile(baseLat, 0.99)).toFixed(1)} | p99 ≤ 1,000 ms: ${quantile(agentLat, 0.99) <= 1000 ? 'met' : 'missed'} |`,
      `| memory per open watcher (heap + external, KiB) | ${(agentHeapPer / 1024).toFixed(1)} | ${(baseHeapPer / 1024).toFixed(1)} | ${(agentHeapPer / baseHeapPer).toFixed(1)} | RSS: ${(agentRssPer / 1024).toFixed(1)} KiB/watcher |`,
    ];
    const body = [
      `Node ${process.version}, ${new Date().toISOString().slice(0, 10)}. The agent's secrets socket (every request identified: SO_PEERCRED pid per connection, re-checked against pid reuse every 250 ms, pod token verified — cached until it expires — and checked against the pod's cgroup, node and declared references; values from the in-memory cache; every read audited; Vault double behind node-vault) against a bare \`http\` server on a unix socket answering a fixed JSON / broadcasting one line, with the same client process inside a pod cgroup, in the same run. Rotation time is from the forced rotation call (Vault metadata + data read as the pod included) to the moment the last watcher parsed its line. \`npm run bench -- secrets\`.`,
      '',
      '| measure | agent | baseline | ratio | target |',
      '|---|---|---|---|---|',
      ...rows,
    ].join('\n');
    console.log(body);
    writeSection('secrets', body);
  } finally {
    await world.stop();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
