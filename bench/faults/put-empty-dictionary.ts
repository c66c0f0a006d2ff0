// Fault scenario "put-empty-dictionary": `PUT /api/v1/dictionary/{key}` with `{}` used to
// answer 500. The row: its status and error code, and that the process is still up.
import { startControllerProcess } from '#test/harness/controller-process.js';

import { crashed, peakRssMiB } from './common.ts';
import type { FaultRow } from './row.ts';

export async function putEmptyDictionaryScenario(): Promise<FaultRow> {
  const c = await startControllerProcess();
  try {
    const res = await c.api('/api/v1/dictionary/nemu_label_team', { method: 'PUT', body: {} });
    const body = (await res.json().catch(() => ({}))) as { code?: string };
    const ready = (await fetch(`${c.apiUrl}/readyz`)).status;
    const crashes = crashed(c) ? 1 : 0;
    return {
      scenario: 'put-empty-dictionary: PUT /api/v1/dictionary/{key} with {}',
      reviewsAnswered: NaN,
      crashes,
      p50: NaN,
      p99: NaN,
      rssPeakMiB: peakRssMiB(c.child.pid),
      recoverSeconds: NaN,
      notes: `HTTP ${res.status} ${body.code ?? ''}, /readyz ${ready} after; target: 400, no crash → ${res.status === 400 && crashes === 0 ? 'met' : 'NOT met'}`,
    };
  } finally {
    await c.kill();
  }
}
