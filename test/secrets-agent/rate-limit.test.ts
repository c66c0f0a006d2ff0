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
    const statuses: number[] = [];
    for (let i = 0; i < 20; i++) statuses.push((await c.request({ path: '/v1/secrets', token, container: 'app' })).status);
    expect(statuses.filter((s) => s === 200).length).toBeGreaterThanOrEqual(10);
    expect(statuses).toContain(429);
    const limited = await c.request({ path: '/v1/secrets', token, container: 'app' });
    expect((limited.body as { code: string }).code).toBe('NEMU_ERR_SECRETS_RATE_LIMITED');
    const q = await (await quiet.client()).request({ path: '/v1/secrets', token: await quiet.token(), container: 'app' });
    expect(q.status).toBe(200);
  });
});
