// A pod that floods the socket is slowed down with 429 and a clear code; others are not.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { startWorld, type World } from './world.ts';

let world: World;
beforeAll(async () => {
  world = await startWorld({ secretsRateLimit: 5 });
  world.vault.put('secret/app/db', { password: 'rl-' + Math.random().toString(36).slice(2) });
});
afterAll(async () => {
  await world?.stop();
});

describe('rate limit', () => {
  it('answers 429 NEMU_ERR_SECRETS_RATE_LIMITED past the per-pod budget, without affecting another pod', async () => {
    const annotation = { v: 1, role: 'app', containers: { app: { env: { DB: 'vault:secret/app/db#password' } } }, files: {} };
    const noisy = await world.pod({ name: 'noisy-1', annotation });
    const quiet = await world.pod({ name: 'quiet-1', annotation });
    const c = await noisy.client();
    const token = await noisy.token();
    // Concurrent batches until the limiter answers 429. Whatever the machine's speed, the pod
    // got its burst (2 × 5) and at most what the rate refills over the time it took.
    const statuses: number[] = [];
    let limited: { status: number; body: unknown } | undefined;
    const t0 = performance.now();
    while (!statuses.includes(429) && statuses.length < 400) {
      const batch = await Promise.all(Array.from({ length: 20 }, () => c.request({ path: '/v1/secrets', token, container: 'app' })));
      statuses.push(...batch.map((a) => a.status));
      limited ??= batch.find((a) => a.status === 429);
    }
    const seconds = (performance.now() - t0) / 1000;
    const allowed = statuses.filter((s) => s === 200).length;
    expect(statuses).toContain(429);
    expect(allowed).toBeGreaterThanOrEqual(10);
    expect(allowed).toBeLessThanOrEqual(10 + Math.ceil(5 * seconds) + 1);
    expect(statuses.filter((s) => s !== 200 && s !== 429)).toEqual([]);
    expect((limited!.body as { code: string }).code).toBe('NEMU_ERR_SECRETS_RATE_LIMITED');
    const q = await (await quiet.client()).request({ path: '/v1/secrets', token: await quiet.token(), container: 'app' });
    expect(q.status).toBe(200);
  });
});
