// Fault scenario "sentinel-failover": kill -9 of the Redis master under RATE reviews/s, with
// two replicas and three real redis-sentinels (down-after-milliseconds 1000) and the store
// counting a log write only once a replica holds it (redisWaitReplicas 1). Recover = from the
// kill to the answer of the first of 20 consecutive mutated reviews on the new master (the
// issue's target: ≤ 10 s). Lost = answered ids the REST API cannot find afterwards.
import { startControllerProcess, startReviewLoad } from '#test/harness/controller-process.js';
import { startSentinelGroup } from '#test/harness/sentinel.js';
import { until } from '#test/harness/wait.js';

import { baselineWindow, ids, latency, loadRow, missingViaApi, RATE, sentBetween, setTeamKey } from './common.ts';
import type { FaultRow } from './row.ts';

export async function sentinelFailoverScenario(rate = RATE): Promise<FaultRow> {
  const group = await startSentinelGroup({ replicas: 2, sentinels: 3, downAfterMs: 1000, failoverTimeoutMs: 2000 });
  try {
    const c = await startControllerProcess([
      '--redis-sentinels',
      group.sentinelList,
      '--redis-master-name',
      group.masterName,
      '--redis-wait-replicas',
      '1',
      '--redis-wait-timeout',
      '1000ms',
      '--api-rate-limit',
      '0',
    ]);
    try {
      await setTeamKey(c);
      const load = startReviewLoad(c.webhookUrl, c.ca, rate);
      const base0 = await baselineWindow(load);
      const oldMaster = await group.masterPort();
      const killedAt = Date.now();
      await group.kill(oldMaster);
      const resumedAt = await until(
        'admission to mutate again on the new master',
        async () => {
          if ((await group.masterPort().catch(() => oldMaster)) === oldMaster) return false;
          const after = load.answers.filter((a) => a.sentAt > killedAt).sort((a, b) => a.sentAt - b.sentAt);
          let i = after.length;
          while (i > 0 && after[i - 1]!.id) i--;
          return after.length - i >= 20 ? after[i]!.sentAt + after[i]!.ms : false;
        },
        60_000,
        50,
      );
      const newMaster = await group.masterPort();
      await until('1 s of load on the new master', () => Date.now() - resumedAt > 1000, 10_000, 50);
      await load.stop();

      const base = latency(sentBetween(load.answers, base0.from, base0.to));
      const during = load.answers.filter((a) => a.sentAt >= killedAt && a.sentAt + a.ms < resumedAt);
      const d = latency(during);
      const answered = ids(load.answers);
      const lost = (await missingViaApi(c, answered)).length;
      const recover = (resumedAt - killedAt) / 1000;
      const met = recover <= 10 && lost === 0 && load.failed === 0;
      return loadRow(c, load, d, base, {
        scenario: `sentinel-failover: kill -9 of the Redis master (2 replicas, 3 sentinels, WAIT 1) under ${rate} reviews/s`,
        lost: lost,
        recoverSeconds: recover,
        notes: `master ${oldMaster} → ${newMaster}; ${during.length} reviews answered during the failover (${during.filter((a) => a.id).length} mutated); ${answered.length} ids answered in all; recover is from the kill (detection takes down-after 1 s); target: mutating ≤ 10 s, 0 lost → ${met ? 'met' : 'NOT met'}`,
      });
    } finally {
      await c.kill();
    }
  } finally {
    await group.stop();
  }
}
