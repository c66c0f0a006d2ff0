// Fault scenario "redis-stopped": the Redis server stopped for 5 s under RATE reviews/s,
// then started again on the same port and data (append-only file, fsync always). During the
// outage every review is admitted unmutated; the targets: p99 ≤ 300 ms during the
// outage (one shared per-review deadline, dictionaryTimeout 200 ms) and at most one log line
// per second about it. Recover = from Redis answering again to the first mutated answer.
import { startControllerProcess, startReviewLoad } from '#test/harness/controller-process.js';
import { startRedis } from '#test/harness/redis.js';
import { until } from '#test/harness/wait.js';

import { baselineWindow, ids, latency, loadRow, missingInRedis, RATE, sentBetween, setTeamKey } from './common.ts';
import type { FaultRow } from './row.ts';

export async function redisStoppedScenario(outageMs = 5000): Promise<FaultRow> {
  const r = await startRedis({ persist: true });
  const c = await startControllerProcess(['--store', 'redis', '--redis-url', r.url]);
  try {
    await setTeamKey(c);
    const load = startReviewLoad(c.webhookUrl, c.ca, RATE);
    const base0 = await baselineWindow(load);
    let downAt = 0;
    let upAt = 0;
    await r.restart(async () => {
      downAt = Date.now();
      await until('the outage to last', () => Date.now() - downAt > outageMs, outageMs + 10_000, 50);
      upAt = Date.now();
    });
    const answeringAt = Date.now();
    await until('a mutated answer after Redis is back', () => load.answers.some((a) => a.sentAt > answeringAt && a.id), 30_000, 10);
    const mutatingMs = Math.min(...load.answers.filter((a) => a.sentAt > answeringAt && a.id).map((a) => a.sentAt + a.ms)) - answeringAt;
    await until('1 s of load after recovery', () => Date.now() - answeringAt > 1000, 10_000, 50);
    await load.stop();

    const base = latency(sentBetween(load.answers, base0.from, base0.to));
    const during = sentBetween(load.answers, downAt, upAt);
    const d = latency(during);
    const mutatedDuring = during.filter((a) => a.patched).length;
    const lines = c.logs.filter((l) => l.at >= downAt && l.at <= upAt + 500);
    const seconds = (upAt + 500 - downAt) / 1000;
    const tally = new Map<string, number>();
    for (const l of lines) {
      const m = String(l.line.msg ?? l.line.raw).slice(0, 70);
      tally.set(m, (tally.get(m) ?? 0) + 1);
    }
    const raw = lines.filter((l) => l.line.raw !== undefined).length;
    const messages = [...tally].map(([m, k]) => `${k}× "${m}"`);
    for (const l of lines) console.log(`redis-stopped log +${l.at - downAt} ms: ${JSON.stringify(l.line).slice(0, 300)}`);
    const answered = ids(load.answers);
    const lost = await missingInRedis(r.url, answered);
    const met = d.p99 <= 300 && lines.length <= Math.floor(seconds) && lost === 0;
    return loadRow(c, load, d, base, {
      scenario: `redis-stopped: Redis down ${outageMs / 1000} s under ${RATE} reviews/s, then started on the same data`,
      lost: lost,
      recoverSeconds: mutatingMs / 1000,
      notes: `${during.length} reviews during the outage, ${mutatedDuring} mutated; ${lines.length} lines printed in ${seconds.toFixed(1)} s (${(lines.length / seconds).toFixed(1)}/s; ${raw} of them not from the logger): ${messages.join(', ')}; target: p99 ≤ 300 ms, ≤ 1 line/s, 0 lost → ${met ? 'met' : 'NOT met'}`,
    });
  } finally {
    await c.kill();
    await r.stop();
  }
}
