// The secrets socket end to end with real parts: processes in real pod-shaped cgroups call
// the agent's unix socket; the kube double provides pods, tokens and the JWKS; the Vault
// double is reached through node-vault. Values are compared by hash, never printed.
import { createHash } from 'node:crypto';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { until } from '../harness/wait.ts';
import { NODE, startWorld, type TestPod, type World } from './world.ts';

const sha = (s: unknown) => createHash('sha256').update(String(s)).digest('hex');
const DB = 'S3cr3t-db-' + Math.random().toString(36).slice(2);
const API = 'S3cr3t-api-' + Math.random().toString(36).slice(2);

const annotation = {
  v: 1,
  role: 'app',
  containers: {
    app: { env: { DB_PASSWORD: 'vault:secret/app/db#password', DB_USER: 'vault:secret/app/db#user' } },
    side: { env: { API_KEY: 'vault:secret/app/api#key' } },
  },
  files: { 'db.pass': 'vault:secret/app/db#password' },
};

let world: World;
let web: TestPod;
let other: TestPod;

beforeAll(async () => {
  world = await startWorld();
  world.vault.put('secret/app/db', { password: DB, user: 'shop' });
  world.vault.put('secret/app/api', { key: API });
  web = await world.pod({ name: 'web-1', containers: ['app', 'side'], annotation });
  other = await world.pod({ name: 'other-1', annotation: { v: 1, role: 'app', containers: { app: { env: {} } }, files: {} } });
});
afterAll(async () => {
  await world?.stop();
});

describe('GET /v1/secrets', () => {
  it('gives a container its declared env and the pod files, read from Vault as the pod', async () => {
    const c = await web.client();
    const r = await c.request({ path: '/v1/secrets', token: await web.token(), container: 'app' });
    expect(r.status).toBe(200);
    const body = r.body as { env: Record<string, { value: string; version: number; path: string }>; files: Record<string, { value: string; version: number }> };
    expect(Object.keys(body.env).sort()).toEqual(['DB_PASSWORD', 'DB_USER']);
    expect(sha(body.env.DB_PASSWORD!.value)).toBe(sha(DB));
    expect(body.env.DB_PASSWORD).toMatchObject({ version: 1, path: 'secret/app/db' });
    expect(sha(body.files['db.pass']!.value)).toBe(sha(DB));
    // API_KEY belongs to the other container: not served to this one.
    expect(body.env.API_KEY).toBeUndefined();
    expect(world.vault.requests.filter((x) => x.startsWith('POST /v1/auth/kubernetes/login')).length).toBeGreaterThan(0);
    expect(world.logs.some((l) => l.includes('"audit":"read"') && l.includes('"path":"secret/app/db"') && l.includes(`"pid":${c.pid}`))).toBe(true);
  });

  it('serves the narrower set for ?path=', async () => {
    const api = await world.pod({ name: 'api-1', containers: ['side'], annotation });
    const c = await api.client();
    const r = await c.request({ path: '/v1/secrets?path=secret/app/api', token: await api.token(), container: 'side' });
    expect(r.status).toBe(200);
    expect(sha((r.body as { env: Record<string, { value: string }> }).env.API_KEY!.value)).toBe(sha(API));
  });
});

describe('denials', () => {
  const code = (r: { body: unknown }) => (r.body as { code?: string }).code;

  it('refuses a process in another pod presenting a stolen token', async () => {
    const c = await other.client();
    const r = await c.request({ path: '/v1/secrets', token: await web.token(), container: 'app' });
    expect([r.status, code(r)]).toEqual([403, 'NEMU_ERR_SECRETS_TOKEN_MISMATCH']);
  });

  it('refuses a token bound to another node', async () => {
    const node2 = world.kube.get('nodes', undefined, 'node-2')!;
    const c = await web.client();
    const r = await c.request({
      path: '/v1/secrets',
      token: await web.token({ node: { name: 'node-2', uid: node2.metadata.uid as string } }),
      container: 'app',
    });
    expect([r.status, code(r)]).toEqual([403, 'NEMU_ERR_SECRETS_WRONG_NODE']);
    expect(NODE).toBe('node-1');
  });

  it('refuses an undeclared path, for reads and acks', async () => {
    const c = await web.client();
    const token = await web.token();
    const r = await c.request({ path: '/v1/secrets?path=secret/app/api', token, container: 'app' });
    expect([r.status, code(r)]).toEqual([403, 'NEMU_ERR_SECRETS_NOT_DECLARED']);
    const a = await c.request({ method: 'POST', path: '/v1/ack', token, container: 'app', body: { path: 'secret/other/x', version: 1 } });
    expect([a.status, code(a)]).toEqual([403, 'NEMU_ERR_SECRETS_NOT_DECLARED']);
  });

  it('refuses an expired token, a missing one, a wrong audience and a garbage one', async () => {
    const c = await web.client();
    const expired = await c.request({ path: '/v1/secrets', token: await web.token({ expirationSeconds: -5 }), container: 'app' });
    expect([expired.status, code(expired)]).toEqual([401, 'NEMU_ERR_SECRETS_TOKEN_EXPIRED']);
    const none = await c.request({ path: '/v1/secrets', container: 'app' });
    expect([none.status, code(none)]).toEqual([401, 'NEMU_ERR_SECRETS_UNAUTHENTICATED']);
    const aud = await c.request({ path: '/v1/secrets', token: await web.token({ audiences: ['nemutator'] }), container: 'app' });
    expect([aud.status, code(aud)]).toEqual([401, 'NEMU_ERR_SECRETS_UNAUTHENTICATED']);
    const junk = await c.request({ path: '/v1/secrets', token: 'not.a.jwt', container: 'app' });
    expect([junk.status, code(junk)]).toEqual([401, 'NEMU_ERR_SECRETS_UNAUTHENTICATED']);
  });

  it('refuses a container name the cgroup contradicts, and a process outside any pod', async () => {
    const c = await web.client();
    const r = await c.request({ path: '/v1/secrets', token: await web.token(), container: 'side' });
    expect([r.status, code(r)]).toEqual([403, 'NEMU_ERR_SECRETS_CONTAINER_MISMATCH']);
    // This test process is in no pod's cgroup.
    const outside = await new Promise<{ status: number; body: string }>((resolve) => {
      http.get({ socketPath: world.socketPath, path: '/v1/secrets', headers: { authorization: 'Bearer x', 'x-nemutator-container': 'app' } }, (res) => {
        let d = '';
        res.on('data', (x) => (d += x));
        res.on('end', () => resolve({ status: res.statusCode!, body: d }));
      });
    });
    expect(outside.status).toBe(403);
    expect(JSON.parse(outside.body).code).toBe('NEMU_ERR_SECRETS_NOT_A_POD');
  });

  it('answers garbage, oversized and unknown requests with JSON errors and keeps serving', async () => {
    const c = await web.client();
    const garbage = await c.request({ path: '', raw: Buffer.from('\x00\x01GARBAGE \r\n\r\n').toString('base64') });
    expect(garbage.status).toBe(400);
    expect(JSON.parse(garbage.body as string).code).toBe('NEMU_ERR_SECRETS_BAD_REQUEST');
    const bigHeader = await c.request({ path: '/v1/secrets', headers: { 'x-pad': 'a'.repeat(20_000) } });
    expect(bigHeader.status).toBe(413);
    const token = await web.token();
    const bigBody = await c.request({ method: 'POST', path: '/v1/ack', token, container: 'app', body: 'x'.repeat(100_000) });
    expect([bigBody.status, code(bigBody)]).toEqual([413, 'NEMU_ERR_SECRETS_TOO_LARGE']);
    const notJson = await c.request({ method: 'POST', path: '/v1/ack', token, container: 'app', body: '{nope' });
    expect([notJson.status, code(notJson)]).toEqual([400, 'NEMU_ERR_SECRETS_BAD_REQUEST']);
    const route = await c.request({ path: '/v2/everything', token, container: 'app' });
    expect([route.status, code(route)]).toEqual([404, 'NEMU_ERR_SECRETS_NO_ROUTE']);
    for (let i = 0; i < 50; i++) await c.request({ path: '', raw: Buffer.from(`${'Z'.repeat(i * 37)}\r\n`).toString('base64') });
    const ok = await c.request({ path: '/v1/secrets', token, container: 'app' });
    expect(ok.status).toBe(200);
  });
});

describe('pods that are gone', () => {
  it('are forgotten: their Vault token revoked, their values and holders dropped', async () => {
    const gone = await world.pod({ name: 'gone-1', annotation });
    const c = await gone.client();
    expect((await c.request({ path: '/v1/secrets', token: await gone.token(), container: 'app' })).status).toBe(200);
    const tokensBefore = world.vault.liveTokens();
    expect(world.secrets.service.status().some((h) => h.podUid === gone.uid)).toBe(true);
    await world.kube.delete('pods', 'shop', 'gone-1');
    await until('the agent drops the holders of the deleted pod', () => !world.secrets.service.status().some((h) => h.podUid === gone.uid));
    await until("the pod's Vault token is revoked", () => world.vault.liveTokens() < tokensBefore);
    expect(world.vault.liveTokens()).toBe(tokensBefore - 1);
    expect(world.vault.requests).toContain('POST /v1/auth/token/revoke-self');
  });
});

describe('Vault tokens', () => {
  it('are renewed before their lease ends, so reads go on without a new login', async () => {
    world.vault.roles.short = {
      boundServiceAccountNames: ['app'],
      boundServiceAccountNamespaces: ['shop'],
      audience: 'vault',
      readPaths: ['secret/data/app/*', 'secret/metadata/app/*'],
      ttlSeconds: 3,
    };
    const pod = await world.pod({ name: 'short-1', annotation: { ...annotation, role: 'short' } });
    const c = await pod.client();
    const token = await pod.token();
    const logins = () => world.vault.requests.filter((r) => r === 'POST /v1/auth/kubernetes/login').length;
    const renewals = () => world.vault.requests.filter((r) => r === 'POST /v1/auth/token/renew-self').length;
    const renewedBefore = renewals();
    expect((await c.request({ path: '/v1/secrets', token, container: 'app' })).status).toBe(200);
    const loginsAfterFirst = logins();
    const leaseEnds = Date.now() + 3000;
    // The agent renews on its own; past the first 3 s lease only that renewal keeps the token alive.
    await until('a renewal, and the first lease over', () => renewals() > renewedBefore && Date.now() > leaseEnds + 500, 15_000, 50);
    expect(renewals()).toBeGreaterThan(renewedBefore);
    expect((await world.secrets.handlers.rotate({ rotate: { path: 'secret/app/db' } })).rotate!.pathsChecked).toBeGreaterThanOrEqual(1);
    expect(logins()).toBe(loginsAfterFirst);
  });
});
