// Rotation and staleness against the real socket: a watching workload gets new versions on
// the rotation interval and at once on a forced rotation, acks show in the status handler,
// while Vault is away cached values are served up to maxStaleness, then refused, and a failed
// rotation check is logged and counted. Each test has its own pod and Vault path.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { boundMs, medianMs } from '../harness/baseline.ts';
import { until } from '../harness/wait.ts';
import { type PodClient, startWorld, type World } from './world.ts';

const sha = (s: unknown) => createHash('sha256').update(String(s)).digest('hex');
const INTERVAL = 1000;
const STALENESS = 3000;
const values: string[] = [];
const fresh = (tag: string) => {
  const v = `${tag}-${Math.random().toString(36).slice(2)}`;
  values.push(v);
  return v;
};

/** Periodic checks every second. */
let periodic: World;
/** No periodic check during a test: only forced rotations move versions, so counts are exact. */
let forced: World;

beforeAll(async () => {
  [periodic, forced] = await Promise.all([
    startWorld({ rotationInterval: INTERVAL, maxStaleness: STALENESS }),
    startWorld({ rotationInterval: 3_600_000, maxStaleness: STALENESS }),
  ]);
});
afterAll(async () => {
  await Promise.all([periodic?.stop(), forced?.stop()]);
});

type Line = { path: string; version: number; env: Record<string, { value: string; version: number }>; files: Record<string, { value: string }> };

/** A pod declaring `secret/app/<name>#password` as env and file, that has read it once. */
async function readingPod(world: World, name: string): Promise<{ client: PodClient; token: string; uid: string; path: string; value: string }> {
  const path = `secret/app/${name}`;
  const value = fresh(name);
  world.vault.put(path, { password: value });
  const pod = await world.pod({
    name,
    annotation: { v: 1, role: 'app', containers: { app: { env: { DB_PASSWORD: `vault:${path}#password` } } }, files: { 'db.pass': `vault:${path}#password` } },
  });
  const client = await pod.client();
  const token = await pod.token();
  const first = await client.request({ path: '/v1/secrets', token, container: 'app' });
  expect(first.status).toBe(200);
  return { client, token, uid: pod.uid, path, value };
}

/** How long a forced rotation that finds nothing new takes on this machine right now. */
const noopRotationMs = (world: World, path: string) => medianMs(() => world.secrets.service.rotate(path));

describe('rotation', () => {
  it('pushes a new Vault version to a watcher within the rotation interval, and records its ack', async () => {
    const { client, token, uid, path } = await readingPod(periodic, 'periodic');
    const bound = boundMs(INTERVAL * 1.1 + 500, await noopRotationMs(periodic, path));
    const w = await client.watch({ token, container: 'app' });
    expect(w.status).toBe(200);
    const v2 = fresh('v2');
    const version = periodic.vault.put(path, { password: v2 });
    const t0 = Date.now();
    const line = (await w.next(bound)) as unknown as Line;
    expect(line).toMatchObject({ path, version });
    expect(sha(line.env.DB_PASSWORD!.value)).toBe(sha(v2));
    expect(sha(line.files['db.pass']!.value)).toBe(sha(v2));

    const ack = await client.request({ method: 'POST', path: '/v1/ack', token, container: 'app', body: { path, version } });
    expect(ack.status).toBe(204);
    const status = await periodic.secrets.handlers.secretStatus({ secretStatus: { path: `vault:${path}#password` } });
    const h = status.secretStatus!.holders!.find((x) => x.podUid === uid && x.container === 'app');
    expect(h).toMatchObject({ namespace: 'shop', pod: 'periodic', path, version, ackedVersion: version });
    expect(Number(h!.ackedUnixMs)).toBeGreaterThanOrEqual(t0);
    expect(periodic.logs.some((l) => l.includes('"audit":"ack"') && l.includes(`"path":"${path}"`) && l.includes(`"version":${version}`))).toBe(true);
  });

  it('a forced rotation reaches every watcher at once (2 s on an idle machine)', async () => {
    const { client, token, path } = await readingPod(forced, 'forced');
    const bound = boundMs(2000, await noopRotationMs(forced, path));
    const watchers = await Promise.all([0, 1, 2].map(() => client.watch({ token, container: 'app' })));
    const v3 = fresh('v3');
    const version = forced.vault.put(path, { password: v3 });
    const t0 = Date.now();
    const r = await forced.secrets.handlers.rotate({ rotate: { path } });
    const lines = (await Promise.all(watchers.map((w) => w.next(bound)))) as unknown as Line[];
    expect(Date.now() - t0).toBeLessThan(bound);
    for (const l of lines) expect([l.version, sha(l.env.DB_PASSWORD!.value)]).toEqual([version, sha(v3)]);
    // No periodic check in this world: the forced rotation found the version and sent it, once per watcher.
    expect(r.rotate).toEqual({ pathsChecked: 1, newVersions: 1, watchersNotified: 3 });
  });
});

describe('Vault unreachable', () => {
  it('serves cached values within maxStaleness, then refuses with a clear code, and recovers', async () => {
    const { client, token, path, value } = await readingPod(forced, 'stale');
    // A forced rotation confirms the cached version: the staleness clock starts no earlier than this.
    const confirmedFrom = Date.now();
    await forced.secrets.service.rotate(path);
    await forced.vault.pause();
    try {
      const cached = await client.request({ path: '/v1/secrets', token, container: 'app' });
      expect(cached.status).toBe(200);
      expect(sha((cached.body as { env: Record<string, { value: string }> }).env.DB_PASSWORD!.value)).toBe(sha(value));
      const refused = await until(
        'a read refused once the cache is older than maxStaleness',
        async () => {
          const r = await client.request({ path: '/v1/secrets', token, container: 'app' });
          return r.status !== 200 && r;
        },
        STALENESS + 15_000,
        50,
      );
      // Never before the bound.
      expect(Date.now() - confirmedFrom).toBeGreaterThanOrEqual(STALENESS);
      expect(refused.status).toBe(503);
      expect((refused.body as { code: string }).code).toBe('NEMU_ERR_SECRETS_VAULT_UNAVAILABLE');
    } finally {
      await forced.vault.start();
    }
    const back = await client.request({ path: '/v1/secrets', token, container: 'app' });
    expect(back.status).toBe(200);
  });

  it('a failed rotation check is logged and counted by code, without the value', async () => {
    const { path, value } = await readingPod(forced, 'failing');
    const counted = async () => {
      const m = (await forced.secrets.registry.getSingleMetric('nemutator_agent_secrets_rotation_errors_total')!.get()).values;
      return m.find((s) => s.labels.code === 'NEMU_ERR_SECRETS_VAULT_UNAVAILABLE')?.value ?? 0;
    };
    const before = await counted();
    await forced.vault.pause();
    try {
      const r = await forced.secrets.service.rotate(path);
      expect(r).toMatchObject({ pathsChecked: 1, newVersions: 0 });
    } finally {
      await forced.vault.start();
    }
    expect(await counted()).toBe(before + 1);
    const line = forced.logs.find((l) => l.includes('secrets rotation check failed') && l.includes(`"path":"${path}"`));
    expect(line).toBeDefined();
    expect(JSON.parse(line!)).toMatchObject({ level: expect.anything(), code: 'NEMU_ERR_SECRETS_VAULT_UNAVAILABLE', pod: 'failing', namespace: 'shop' });
    expect(line).not.toContain(value);
    expect(await forced.secrets.registry.metrics()).toMatch(/nemutator_agent_secrets_rotation_errors_total\{code="NEMU_ERR_SECRETS_VAULT_UNAVAILABLE"\} [1-9]/);
  });

  it('no secret value appears in any log line, error or answer other than the secrets themselves', async () => {
    // Its own reads, push, ack and failed check, then every log line of both worlds.
    const { client, token, path } = await readingPod(forced, 'leak');
    const w = await client.watch({ token, container: 'app' });
    const version = forced.vault.put(path, { password: fresh('leak-v2') });
    await forced.secrets.service.rotate(path);
    await w.next(10_000);
    expect((await client.request({ method: 'POST', path: '/v1/ack', token, container: 'app', body: { path, version } })).status).toBe(204);
    const denied = await client.request({ path: '/v1/secrets?path=secret/app/other', token, container: 'app' });
    expect(denied.status).toBe(403);
    await forced.vault.pause();
    await forced.secrets.service.rotate(path).finally(() => forced.vault.start());
    const text = [...forced.logs, ...periodic.logs].join('\n');
    // What the logs were searched through: the audit of each event of this test, and the failed check.
    for (const event of ['read', 'push', 'ack'])
      expect(
        forced.logs.some((l) => l.includes(`"audit":"${event}"`) && l.includes(`"path":"${path}"`)),
        event,
      ).toBe(true);
    expect(forced.logs.some((l) => l.includes('"audit":"deny"') && l.includes('"path":"secret/app/other"'))).toBe(true);
    expect(forced.logs.some((l) => l.includes('secrets rotation check failed') && l.includes(`"path":"${path}"`))).toBe(true);
    for (const v of values) expect(text.includes(v), 'a value leaked into the logs').toBe(false);
  });
});
