// Fault scenario "redis-refuses-writes": Redis keeps answering reads but refuses every write
// (`CONFIG SET min-replicas-to-write 1` with no replica) for 3 s under RATE reviews/s. Reviews
// during it must be admitted unmutated (fail open, never mutated-but-unlogged), /readyz must
// say 503 within 2 s, and mutating must resume within 2 s of writes recovering.
import { Redis } from 'ioredis';

import { startControllerProcess, startReviewLoad } from '#test/harness/controller-process.js';
import { startRedis } from '#test/harness/redis.js';
import { until } from '#test/harness/wait.js';

import { baselineWindow, ids, latency, loadRow, missingInRedis, RATE, sentBetween, setTeamKey } from './common.ts';
import type { FaultRow } from './row.ts';

export async function redisRefusesWritesScenario(faultMs = 3000): Promise<FaultRow> {
  const r = await startRedis();
  const c = await startControllerProcess(['--store', 'redis', '--redis-url', r.url]);
  const admin = new Redis(r.url);
  try {
    await setTeamKey(c);
    const load = startReviewLoad(c.webhookUrl, c.ca, RATE);
    const base0 = await baselineWindow(load);
    const faultAt = Date.now();
    await admin.config('SET', 'min-replicas-to-write', '1');
    await until('/readyz to answer 503', async () => (await fetch(`${c.apiUrl}/readyz`)).status === 503, 10_000, 10);
    const notReadyMs = Date.now() - faultAt;
    await until('the fault to last', () => Date.now() - faultAt > faultMs, 20_000, 50);
    await admin.config('SET', 'min-replicas-to-write', '0');
    const recoveredAt = Date.now();
    await until('a mutated answer after recovery', () => load.answers.some((a) => a.sentAt > recoveredAt && a.id), 20_000, 10);
    const mutatingMs = Math.min(...load.answers.filter((a) => a.sentAt > recoveredAt && a.id).map((a) => a.sentAt + a.ms)) - recoveredAt;
    await until('/readyz ready again', async () => (await fetch(`${c.apiUrl}/readyz`)).status === 200, 20_000, 10);
    const readyMs = Date.now() - recoveredAt;
    await until('1 s of load after recovery', () => Date.now() - recoveredAt > 1000, 10_000, 50);
    await load.stop();

    const base = latency(sentBetween(load.answers, base0.from, base0.to));
    const during = sentBetween(load.answers, faultAt, recoveredAt);
    const d = latency(during);
    // after the first refusal reached the controller (it learns on its next write) and before recovery
    const settled = during.filter((a) => a.sentAt > faultAt + 200 && a.sentAt + a.ms < recoveredAt);
    const mutatedDuring = settled.filter((a) => a.patched).length;
    const warned = settled.filter((a) => a.warnings.join('\n').includes('NEMU_ERR_MUTATION_LOG')).length;
    const answered = ids(load.answers);
    const lost = await missingInRedis(r.url, answered);
    const met = lost === 0 && mutatedDuring === 0 && notReadyMs <= 2000 && mutatingMs <= 2000;
    return loadRow(c, load, d, base, {
      scenario: `redis-refuses-writes: min-replicas-to-write 1 for ${faultMs / 1000} s under ${RATE} reviews/s`,
      lost: lost,
      recoverSeconds: mutatingMs / 1000,
      notes: `${answered.length} ids answered; during the fault ${settled.length} reviews: ${mutatedDuring} mutated, ${warned} with NEMU_ERR_MUTATION_LOG; /readyz 503 after ${notReadyMs} ms, 200 again ${readyMs} ms after recovery; target: 0 lost, unmutated during, 503 ≤ 2 s, mutating ≤ 2 s → ${met ? 'met' : 'NOT met'}`,
    });
  } finally {
    admin.disconnect();
    await c.kill();
    await r.stop();
  }
}
