// Rotation and staleness against the real socket: a watching workload gets new versions on
// the rotation interval and at once on a forced rotation, acks show in the status handler,
// and while Vault is away cached values are served up to maxStaleness, then refused.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sleep } from '../harness/tools.ts';
import { startWorld, type PodClient, type TestPod, type World } from './world.ts';

const sha = (s: unknown) => createHash('sha256').update(String(s)).digest('hex');
const INTERVAL = 1000;
const STALENESS = 3000;
const values: string[] = [];
const fresh = (tag: string) => {
  const v = `${tag}-${Math.random().toString(36).slice(2)}`;
  values.push(v);
  return v;
};

let world: World;
let web: TestPod;
let client: PodClient;
let token: string;

beforeAll(async () => {
  world = await startWorld({ rotationInterval: INTERVAL, maxStaleness: STALENESS });
  world.vault.put('secret/app/db', { password: fresh('v1') });
  web = await world.pod({ name: 'web-1', annotation: { v: 1, role: 'app', containers: { app: { env: { DB_PASSWORD: 'vault:secret/app/db#password' } } }, files: { 'db.pass': 'vault:secret/app/db#password' } } });
  client = await web.client();
  token = await web.token();
  const first = await client.request({ path: '/v1/secrets', token, container: 'app' });
  expect(first.status).toBe(200);
});
afterAll(async () => {
  await world?.stop();
});

type Line = { path: string; version: number; env: Record<string, { value: string; version: number }>; files: Record<string, { value: string }> };

describe('rotation', () => {
  it('pushes a new Vault version to a watcher within the rotation interval, and records its ack', async () => {
    const w = await client.watch({ token, container: 'app' });
    expect(w.status).toBe(200);
    const v2 = fresh('v2');
    world.vault.put('secret/app/db', { password: v2 });
    const t0 = Date.now();
    const line = (await w.next(INTERVAL * 1.1 + 1500)) as unknown as Line;
    expect(Date.now() - t0).toBeLessThanOrEqual(INTERVAL * 1.1 + 1000);
    expect(line).toMatchObject({ path: 'secret/app/db', version: 2 });
    expect(sha(line.env.DB_PASSWORD!.value)).toBe(sha(v2));
    expect(sha(line.files['db.pass']!.value)).toBe(sha(v2));

    const ack = await client.request({ method: 'POST', path: '/v1/ack', token, container: 'app', body: { path: 'secret/app/db', version: 2 } });
    expect(ack.status).toBe(204);
    const status = await world.secrets.handlers.secretStatus({ secretStatus: { path: 'vault:secret/app/db#password' } });
    const h = status.secretStatus!.holders!.find((x) => x.podUid === web.uid && x.container === 'app');
    expect(h).toMatchObject({ namespace: 'shop', pod: 'web-1', path: 'secret/app/db', version: 2, ackedVersion: 2 });
    expect(Number(h!.ackedUnixMs)).toBeGreaterThan(t0);
    expect(world.logs.some((l) => l.includes('"audit":"ack"') && l.includes('"version":2'))).toBe(true);
  });

  it('a forced rotation reaches every watcher within 2 s', async () => {
    const watchers = await Promise.all([0, 1, 2].map(() => client.watch({ token, container: 'app' })));
    const v3 = fresh('v3');
    world.vault.put('secret/app/db', { password: v3 });
    const t0 = Date.now();
    const r = await world.secrets.handlers.rotate({ rotate: { path: 'secret/app/db' } });
    const lines = (await Promise.all(watchers.map((w) => w.next(2000)))) as unknown as Line[];
    expect(Date.now() - t0).toBeLessThan(2000);
    for (const l of lines) expect([l.version, sha(l.env.DB_PASSWORD!.value)]).toEqual([3, sha(v3)]);
    // The periodic check may have won the race; either way the version went out once.
    if (r.rotate!.newVersions === 1) expect(r.rotate!.watchersNotified).toBeGreaterThanOrEqual(3);
    expect(r.rotate!.pathsChecked).toBeGreaterThanOrEqual(1);
  });
});

describe('Vault unreachable', () => {
  it('serves cached values within maxStaleness, then refuses with a clear code, and recovers', async () => {
    const current = values[values.length - 1]!;
    await sleep(INTERVAL * 1.2); // a periodic check has just confirmed the cache
    await world.vault.pause();
    const pausedAt = Date.now();
    const cached = await client.request({ path: '/v1/secrets', token, container: 'app' });
    expect(cached.status).toBe(200);
    expect(sha((cached.body as { env: Record<string, { value: string }> }).env.DB_PASSWORD!.value)).toBe(sha(current));

    let refused: { status: number; body: unknown } | undefined;
    while (Date.now() - pausedAt < STALENESS + INTERVAL * 2 + 2000) {
      const r = await client.request({ path: '/v1/secrets', token, container: 'app' });
      if (r.status !== 200) {
        refused = r;
        break;
      }
      await sleep(100);
    }
    expect(refused, 'refused once the cache is older than maxStaleness').toBeDefined();
    // Never before the bound: the last confirmation was at most one interval before the pause.
    expect(Date.now() - pausedAt).toBeGreaterThanOrEqual(STALENESS - INTERVAL * 1.1 - 100);
    expect(refused!.status).toBe(503);
    expect((refused!.body as { code: string }).code).toBe('NEMU_ERR_SECRETS_VAULT_UNAVAILABLE');

    await world.vault.start();
    const back = await client.request({ path: '/v1/secrets', token, container: 'app' });
    expect(back.status).toBe(200);
  });

  it('no secret value appears in any log line, error or answer other than the secrets themselves', () => {
    expect(values.length).toBeGreaterThanOrEqual(3);
    const text = world.logs.join('\n');
    for (const v of values) expect(text.includes(v), 'a value leaked into the logs').toBe(false);
    expect(world.logs.filter((l) => l.includes('"audit"')).length).toBeGreaterThan(5);
  });
});
