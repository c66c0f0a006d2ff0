// Malformed input never crashes the webhook: thousands of random, truncated and mangled
// bodies each get a valid HTTP answer (200 with an AdmissionReview, 400 or 413 with a
// { code, message }), and the server still mutates a good review afterwards.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { silentLogger } from '#common/log.js';
import { type RunningController, startController } from '#controller/app.js';
import { controllerFeatures } from '#controller/features.js';
import { SharedTokenAgentAuthenticator } from '#controller/fleet/auth.js';
import { localAuthorizer } from '#controller/server/access.js';
import { StaticTokenAuthenticator } from '#controller/server/auth.js';

import { testControllerConfig } from '../harness/controller.ts';
import { insecureAgent, post } from './https.ts';

let c: RunningController;
let dir: string;
const agent = insecureAgent();

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'nemu-fuzz-'));
  const config = testControllerConfig({ stateDir: dir, maxReviewBytes: 64 * 1024, dictionary: 'embedded', resourceRatio: '2' });
  c = await startController(config, {
    log: silentLogger,
    mode: 'local',
    apiAuth: new StaticTokenAuthenticator('t'),
    authorizer: localAuthorizer,
    agentAuth: new SharedTokenAgentAuthenticator('x'),
    ...controllerFeatures(),
  });
  await fetch(`${c.apiUrl}/dictionary/nemu_label_k`, { method: 'PUT', headers: { authorization: 'Bearer t' }, body: JSON.stringify({ value: 'team' }) });
});
afterAll(async () => {
  agent.destroy();
  await c.stop();
  rmSync(dir, { recursive: true, force: true });
});

const good = JSON.stringify({
  apiVersion: 'admission.k8s.io/v1',
  kind: 'AdmissionReview',
  request: {
    uid: 'u',
    kind: { group: 'apps', version: 'v1', kind: 'Deployment' },
    operation: 'CREATE',
    namespace: 'ns',
    object: {
      metadata: { name: 'd', labels: { nemu_label_k: 'v' }, annotations: { 'nemutator.io/skip-mutation': 'env' } },
      spec: {
        selector: { matchLabels: { app: 'a' } },
        template: {
          metadata: { labels: { app: 'a' } },
          spec: { containers: [{ name: 'c', image: 'x:1', resources: { limits: { cpu: '1' } }, env: [{ name: 'E', value: 'nemu_env_e' }] }] },
        },
      },
    },
  },
});

/** A JSON value that may put anything anywhere a review has structure. */
const anything = fc.jsonValue({ maxDepth: 4 });
const mangledReview = fc
  .record({
    path: fc.constantFrom(
      'request',
      'request.object',
      'request.object.metadata',
      'request.object.spec',
      'request.object.spec.template',
      'request.object.spec.template.spec.containers',
      'request.kind',
      'request.object.metadata.labels',
      'request.object.spec.template.spec.containers.0.env',
    ),
    value: anything,
  })
  .map(({ path, value }) => {
    const doc = JSON.parse(good) as Record<string, unknown>;
    const parts = path.split('.');
    let at = doc as Record<string, unknown>;
    for (const p of parts.slice(0, -1)) at = at[p] as Record<string, unknown>;
    at[parts[parts.length - 1]!] = value;
    return JSON.stringify(doc);
  });
const body = fc.oneof(
  fc.integer({ min: 0, max: good.length }).map((n) => good.slice(0, n)), // truncated
  fc.string({ maxLength: 200 }), // random text
  fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b).toString('latin1')), // random bytes
  anything.map((v) => JSON.stringify(v)), // valid JSON, wrong shape
  mangledReview, // a review with something odd in the middle
);

describe('the webhook under malformed input', () => {
  it('answers every one of 3000 bodies with a valid HTTP answer and keeps serving', async () => {
    const samples = fc.sample(body, { numRuns: 3000, seed: 42 });
    const statuses = new Map<number, number>();
    for (let i = 0; i < samples.length; i += 32) {
      const answers = await Promise.all(samples.slice(i, i + 32).map((b) => post(c.webhookUrl, b, agent)));
      for (const a of answers) {
        statuses.set(a.status, (statuses.get(a.status) ?? 0) + 1);
        expect([200, 400, 413]).toContain(a.status);
        const json = JSON.parse(a.body) as { response?: { allowed: boolean }; code?: string; message?: string };
        if (a.status === 200) expect(json.response?.allowed).toBe(true);
        else expect(json.message).toBeTruthy();
      }
    }
    expect(statuses.get(200)).toBeGreaterThan(100);
    expect(statuses.get(400)).toBeGreaterThan(100);
    const after = JSON.parse((await post(c.webhookUrl, good, agent)).body) as { response: { patch?: string } };
    expect(after.response.patch).toBeDefined();
    expect((await post(c.webhookUrl, 'x'.repeat(70 * 1024), agent)).status).toBe(413);
  });
});
