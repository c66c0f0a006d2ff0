// Fault scenario "request-target": the five absolute-form request targets that used to kill
// the controller (new URL() threw outside any handler in the REST server), sent raw to the
// REST API while reviews arrive at RATE per second. The row: the process stayed up, every
// review was answered, and the REST API still serves after.
import { startControllerProcess, startReviewLoad } from '#test/harness/controller-process.js';
import { until } from '#test/harness/wait.js';
import { dialTcp, send } from '#test/reliability/http-fuzz.js';

import { baselineWindow, crashed, latency, peakRssMiB, RATE, sentBetween, setTeamKey } from './common.ts';
import type { FaultRow } from './row.ts';

export const KILLER_TARGETS = ['http://[', 'http://%zz/', 'https://[::1/', 'http://x:99999/', 'http://[::1]:abc/'];

export async function requestTargetScenario(): Promise<FaultRow> {
  const c = await startControllerProcess();
  try {
    await setTeamKey(c);
    const load = startReviewLoad(c.webhookUrl, c.ca, RATE);
    const base0 = await baselineWindow(load);
    const faultAt = Date.now();
    const u = new URL(c.apiUrl);
    const statuses: string[] = [];
    // each target with GET and POST, three times over, one connection each
    for (let round = 0; round < 3; round++) {
      for (const target of KILLER_TARGETS) {
        for (const method of ['GET', 'POST']) {
          const o = await send(
            dialTcp(u.hostname, Number(u.port)),
            { name: `${method} ${target}`, chunks: [Buffer.from(`${method} ${target} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n`)] },
            5000,
          );
          statuses.push(o.status !== undefined ? String(o.status) : o.hung ? 'hung' : 'closed');
        }
      }
    }
    const faultEnd = Date.now();
    // the REST API serves after the fault
    await until('/readyz 200 after the targets', async () => (await fetch(`${c.apiUrl}/readyz`).catch(() => undefined))?.status === 200, 10_000, 10);
    const recover = (Date.now() - faultEnd) / 1000;
    await until('1 s of load after the fault', () => Date.now() - faultEnd > 1000, 10_000, 50);
    await load.stop();
    const base = latency(sentBetween(load.answers, base0.from, base0.to));
    const during = sentBetween(load.answers, faultAt, faultEnd + 1000);
    const d = latency(during);
    const tally = new Map<string, number>();
    for (const s of statuses) tally.set(s, (tally.get(s) ?? 0) + 1);
    const crashes = crashed(c) ? 1 : 0;
    return {
      scenario: 'request-target: 5 absolute-form targets × GET/POST × 3 to the REST API under 300 reviews/s',
      reviewsAnswered: load.answers.length,
      reviewsSent: load.answers.length + load.failed,
      crashes,
      p50: d.p50,
      p99: d.p99,
      baselineP50: base.p50,
      baselineP99: base.p99,
      rssPeakMiB: peakRssMiB(c.child.pid),
      recoverSeconds: recover,
      notes: `targets answered ${[...tally].map(([k, v]) => `${k}×${v}`).join(' ')}; target: 0 crashes, all answered → ${crashes === 0 && load.failed === 0 ? 'met' : 'NOT met'}`,
    };
  } finally {
    await c.kill();
  }
}
