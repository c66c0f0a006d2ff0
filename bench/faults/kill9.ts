// Fault scenarios "kill9-embedded" and "kill9-redis": kill -9 of the controller process with
// reviews in flight at RATE per second, `runs` times, restarting it each time on the same
// state. Lost = answered mutation ids (the Pod's nemutator.io/mutation label) that the store
// does not hold after the crash. Recover = from starting the process again to its first
// mutated answer (median over the runs).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { LevelStore } from '#controller/store/level.js';
import { type Answer, startControllerProcess, startReviewLoad } from '#test/harness/controller-process.js';
import { percentile } from '#test/harness/hostile-reviews.js';
import { startRedis } from '#test/harness/redis.js';
import { until } from '#test/harness/wait.js';

import { ids, latency, missing, missingInRedis, peakRssMiB, RATE, setTeamKey } from './common.ts';
import type { FaultRow } from './row.ts';

export async function kill9Scenario(backend: 'embedded' | 'redis', runs = 5): Promise<FaultRow> {
  const redis = backend === 'redis' ? await startRedis() : undefined;
  const stateDir = mkdtempSync(join(tmpdir(), 'nemu-faults-kill9-'));
  const args = redis ? ['--store', 'redis', '--redis-url', redis.url] : [];
  const all: Answer[] = [];
  let answeredIds = 0;
  let lost = 0;
  let cutOff = 0;
  let rss = 0;
  let crashes = 0;
  const recover: number[] = [];
  try {
    for (let run = 0; run < runs; run++) {
      const startedAt = Date.now();
      const c = await startControllerProcess(args, stateDir);
      if (run === 0) await setTeamKey(c);
      const load = startReviewLoad(c.webhookUrl, c.ca, RATE);
      const loadFrom = Date.now();
      await until('reviews answered with mutation ids', () => Date.now() - loadFrom > 1500 && load.answers.filter((a) => a.id).length >= 300, 30_000, 20);
      const first = Math.min(...load.answers.filter((a) => a.id).map((a) => a.sentAt + a.ms));
      if (run > 0) recover.push((first - startedAt) / 1000);
      rss = Math.max(rss, peakRssMiB(c.child.pid));
      if (c.child.exitCode !== null) crashes++;
      await c.kill();
      await load.stop();
      cutOff += load.failed;
      all.push(...load.answers);
      const answered = ids(load.answers);
      answeredIds += answered.length;
      if (redis) {
        lost += await missingInRedis(redis.url, answered);
      } else {
        const store = await LevelStore.open(join(stateDir, 'store'));
        try {
          lost += (await missing(answered, async (k) => (await store.get(k)) !== undefined)).length;
        } finally {
          await store.close();
        }
      }
      console.log(`kill9-${backend} run ${run + 1}/${runs}: ${answered.length} ids answered, ${load.failed} reviews cut off by the kill, lost so far ${lost}`);
    }
  } finally {
    await redis?.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
  const l = latency(all);
  return {
    scenario: `kill9-${backend}: kill -9 under ${RATE} reviews/s, ${runs} runs, restart on the same ${backend === 'redis' ? 'Redis' : 'state dir'}`,
    reviewsAnswered: all.length,
    reviewsSent: all.length + cutOff,
    lost,
    crashes,
    p50: l.p50,
    p99: l.p99,
    rssPeakMiB: rss,
    recoverSeconds: percentile(recover, 50),
    notes: `${answeredIds} mutation ids answered in all, ${cutOff} reviews in flight cut off by the kills (the apiserver's failurePolicy applies to those); latency is of the whole runs; recover = restart to first mutated answer; target: 0 lost → ${lost === 0 ? 'met' : 'NOT met'}`,
  };
}
