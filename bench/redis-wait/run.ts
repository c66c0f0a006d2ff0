// What redisWaitReplicas costs: the Redis store's batch (one group of mutation-log entries)
// with and without `WAIT <n> <timeout>` after it, on a master with two replicas (real
// redis-server processes on loopback, replicas started with --replicaof, found through three
// redis-sentinel processes as the controller finds them). The configurations run interleaved
// in rounds, in the same run, so machine noise hits all of them alike.
//
//   npx tsx bench/redis-wait/run.ts      (about a minute)
import { randomUUID } from 'node:crypto';
import { availableParallelism, loadavg } from 'node:os';

import type { RedisTarget } from '#controller/redis/target.js';
import { RedisStore } from '#controller/store/redis.js';
import { startSentinelGroup } from '#test/harness/sentinel.js';

import { writeSection } from '../lib/results.ts';

const ROUNDS = Number(process.env.BENCH_REDIS_WAIT_ROUNDS ?? 20);
const PER_ROUND = 100;
const ENTRY_BYTES = 1500; // about one mutation-log entry of a Pod (head + forward and reverse patch)

interface Config {
  name: string;
  waitReplicas: number;
  entries: number;
}

const configs: Config[] = [
  { name: '1 entry, no WAIT', waitReplicas: 0, entries: 1 },
  { name: '1 entry, WAIT 1', waitReplicas: 1, entries: 1 },
  { name: '1 entry, WAIT 2', waitReplicas: 2, entries: 1 },
  { name: '32 entries, no WAIT', waitReplicas: 0, entries: 32 },
  { name: '32 entries, WAIT 1', waitReplicas: 1, entries: 32 },
  { name: '32 entries, WAIT 2', waitReplicas: 2, entries: 32 },
];

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

const started = new Date();
const load0 = loadavg()[0]!;
const group = await startSentinelGroup({ replicas: 2, sentinels: 3 });
try {
  const target: RedisTarget = { kind: 'sentinel', sentinels: group.sentinels, masterName: group.masterName };
  const prefix = `bench:${randomUUID()}:`;
  const stores = await Promise.all(configs.map((c) => RedisStore.open(target, prefix, { waitReplicas: c.waitReplicas, waitTimeoutMs: 1000 })));
  const filler = 'x'.repeat(ENTRY_BYTES - 200);
  let seq = 0;
  const batchOf = (n: number) =>
    Array.from({ length: n }, () => {
      const id = String(seq++).padStart(10, '0');
      return {
        type: 'put' as const,
        key: `mutations/${id}`,
        value: undefined,
        json: JSON.stringify({ id, kind: 'Pod', namespace: 'shop', verbs: ['labels'], patch: filler }),
      };
    });
  const samples = configs.map(() => [] as number[]);
  const failures = configs.map(() => 0);
  // Warm-up: connections, JIT.
  for (let i = 0; i < 200; i++) for (const s of stores) await s.batch(batchOf(1));
  for (let round = 0; round < ROUNDS; round++) {
    for (let ci = 0; ci < configs.length; ci++) {
      const c = configs[(ci + round) % configs.length]!;
      const k = configs.indexOf(c);
      for (let i = 0; i < PER_ROUND; i++) {
        const ops = batchOf(c.entries);
        const t0 = performance.now();
        try {
          await stores[k]!.batch(ops);
          samples[k]!.push(performance.now() - t0);
        } catch {
          failures[k]!++;
        }
      }
    }
  }
  await Promise.all(stores.map((s) => s.close()));

  const rows = configs.map((c, k) => {
    const s = samples[k]!.sort((a, b) => a - b);
    const base = samples[configs.findIndex((b) => b.entries === c.entries && b.waitReplicas === 0)]!;
    const p50 = quantile(s, 0.5);
    const p99 = quantile(s, 0.99);
    return { c, p50, p99, ratio50: p50 / quantile(base, 0.5), ratio99: p99 / quantile(base, 0.99), n: s.length, failed: failures[k]! };
  });
  const table = [
    '| batch | p50 (ms) | p99 (ms) | p50 vs no WAIT | p99 vs no WAIT | batches | WAIT short of replicas |',
    '|---|---:|---:|---:|---:|---:|---:|',
    ...rows.map(
      (r) => `| ${r.c.name} | ${r.p50.toFixed(3)} | ${r.p99.toFixed(3)} | ${r.ratio50.toFixed(2)} | ${r.ratio99.toFixed(2)} | ${r.n} | ${r.failed} |`,
    ),
  ].join('\n');
  console.log(table);
  writeSection(
    'redis-wait',
    `What \`redisWaitReplicas\` costs: \`RedisStore.batch\` (MULTI of MSET + ZADD + PUBLISH, as one mutation-log group is written) with and without \`WAIT <n> 1000\` after it, on a master with two replicas (real \`redis-server --replicaof\` on loopback, found through three \`redis-sentinel\`). Entries of ${ENTRY_BYTES} bytes; batches one after another (as the group commit writes them); ${ROUNDS} rounds of ${PER_ROUND} batches per configuration, interleaved. \`npm run bench -- redis-wait\`.

Machine: nproc ${availableParallelism()}, Node ${process.version}, ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC; load average ${load0.toFixed(1)} at the start (shared with other work: the absolute numbers are noisy, the ratios less so).

${table}

WAIT adds one round trip to the master plus the replicas' acknowledgement (the master asks them with REPLCONF GETACK and answers when enough have replied). On loopback this is the price per group, not per review: a group carries every review that arrived in its window.`,
  );
} finally {
  await group.stop();
}
