// Graceful shutdown (issue 15): on SIGTERM the controller keeps answering reviews for
// shutdownDrain while /readyz says 503 (so the endpoint is removed), then stops and exits 0.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { openSessions, postReview } from '../harness/hostile-reviews.ts';
import { type LocalProcess, startLocalProcess } from '../harness/local-process.ts';
import { until } from '../harness/wait.ts';

let proc: LocalProcess;
beforeAll(async () => {
  proc = await startLocalProcess(['--shutdown-drain', '3s']);
});
afterAll(() => proc?.kill());

/** A Pod whose label key the dictionary renames: the review comes back with a patch. */
const review = (uid: string) =>
  JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      operation: 'CREATE',
      namespace: 'shop',
      object: {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { generateName: 'web-', namespace: 'shop', labels: { nemu_label_team: 'payments' } },
        spec: { containers: [{ name: 'app', image: 'nginx' }] },
      },
    },
  });

describe('SIGTERM', () => {
  it('keeps mutating during the drain with /readyz at 503, then exits 0', async () => {
    const api = proc.apiUrl;
    const health = api.replace(/\/api\/v1$/, '');
    const put = await fetch(`${api}/dictionary/nemu_label_team`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${proc.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ value: 'example.com/team' }),
    });
    expect(put.status).toBe(200);
    const [session] = openSessions(proc.webhookUrl, 1);
    expect((await postReview(session!, review('before'))).patched).toBe(true);

    const signalled = performance.now();
    proc.child.kill('SIGTERM');
    await until('/readyz to answer 503', async () => (await fetch(`${health}/readyz`)).status === 503, 2000);
    // Not ready, and admission still served, on the open session and on a new one.
    const webhookReady = await postReview(session!, review('during'));
    expect(webhookReady.status).toBe(200);
    expect(webhookReady.patched).toBe(true);
    const [fresh] = openSessions(proc.webhookUrl, 1);
    const during = await postReview(fresh!, review('during-new-connection'));
    expect(during.patched).toBe(true);
    expect(performance.now() - signalled).toBeLessThan(3000);
    expect(proc.exited()).toBeUndefined();

    await until('the process to exit', () => proc.exited(), 20_000, 50);
    expect(proc.exited()).toEqual({ code: 0, signal: null });
    // It did not leave before the drain was over.
    expect(performance.now() - signalled).toBeGreaterThanOrEqual(2900);
    session!.destroy();
    fresh!.destroy();
  }, 60_000);
});
