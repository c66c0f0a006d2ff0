// Fault scenario "shutdown-drain": SIGTERM with shutdownDrain 3 s while reviews arrive at
// RATE per second. During the drain /readyz answers 503 (the endpoint is removed) and reviews
// keep being answered and mutated; the load stops 0.5 s before the drain ends (in a cluster
// the endpoint is gone by then). Afterwards the process exits 0 and every id it answered is
// in the embedded store (the mutation log was flushed).
import { join } from 'node:path';

import { LevelStore } from '#controller/store/level.js';
import { startControllerProcess, startReviewLoad } from '#test/harness/controller-process.js';
import { until } from '#test/harness/wait.js';

import { baselineWindow, ids, latency, missing, peakRssMiB, RATE, sentBetween, setTeamKey } from './common.ts';
import type { FaultRow } from './row.ts';

const DRAIN_MS = 3000;

export async function shutdownDrainScenario(): Promise<FaultRow> {
  const c = await startControllerProcess(['--shutdown-drain', `${DRAIN_MS}ms`]);
  try {
    await setTeamKey(c);
    const load = startReviewLoad(c.webhookUrl, c.ca, RATE);
    const base0 = await baselineWindow(load);
    const exited = new Promise<{ code: number | null; signal: string | null }>((r) => c.child.once('exit', (code, signal) => r({ code, signal })));
    const termAt = Date.now();
    c.child.kill('SIGTERM');
    await until('/readyz to answer 503', async () => (await fetch(`${c.apiUrl}/readyz`).catch(() => undefined))?.status === 503, 5000, 10);
    const notReadyMs = Date.now() - termAt;
    await until('most of the drain', () => Date.now() - termAt > DRAIN_MS - 500, 10_000, 20);
    const rss = peakRssMiB(c.child.pid);
    await load.stop();
    const stopAt = Date.now();
    const exit = await exited;
    const exitS = (Date.now() - termAt) / 1000;

    const base = latency(sentBetween(load.answers, base0.from, base0.to));
    const during = sentBetween(load.answers, termAt, stopAt);
    const d = latency(during);
    const mutated = during.filter((a) => a.patched).length;
    const answered = ids(load.answers);
    const store = await LevelStore.open(join(c.stateDir, 'store'));
    let lost: number;
    try {
      lost = (await missing(answered, async (k) => (await store.get(k)) !== undefined)).length;
    } finally {
      await store.close();
    }
    const met = load.failed === 0 && mutated === during.length && exit.code === 0 && lost === 0;
    return {
      scenario: `shutdown-drain: SIGTERM with shutdownDrain ${DRAIN_MS / 1000} s under ${RATE} reviews/s`,
      reviewsAnswered: load.answers.length,
      reviewsSent: load.answers.length + load.failed,
      lost,
      crashes: exit.code === 0 ? 0 : 1,
      p50: d.p50,
      p99: d.p99,
      baselineP50: base.p50,
      baselineP99: base.p99,
      rssPeakMiB: rss,
      recoverSeconds: NaN,
      notes: `during the drain ${during.length} reviews sent: ${mutated} mutated, ${load.failed} failed; /readyz 503 after ${notReadyMs} ms; exit ${exit.code ?? exit.signal} ${exitS.toFixed(1)} s after SIGTERM; target: none failed, all mutated, exit 0, 0 lost → ${met ? 'met' : 'NOT met'}`,
    };
  } finally {
    await c.kill();
  }
}
