// The controller's two HTTP faces as a client sees them: the webhook over HTTP/2 and
// HTTP/1.1 with the generated CA, and the REST API with its errors.
import { mkdtempSync } from 'node:fs';
import { connect } from 'node:http2';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { silentLogger } from '#common/log.js';
import { type RunningController, startController } from '#controller/app.js';
import { SharedTokenAgentAuthenticator } from '#controller/fleet/auth.js';
import { localAuthorizer } from '#controller/server/access.js';
import { StaticTokenAuthenticator } from '#controller/server/auth.js';

import { testControllerConfig } from '../harness/controller.ts';

let c: RunningController;
beforeAll(async () => {
  const config = testControllerConfig({ stateDir: mkdtempSync(join(tmpdir(), 'nemu-srv-')), maxReviewBytes: 4096 });
  c = await startController(config, {
    log: silentLogger,
    mode: 'local',
    apiAuth: new StaticTokenAuthenticator('admin-secret'),
    authorizer: localAuthorizer,
    agentAuth: new SharedTokenAgentAuthenticator('x'),
  });
});
afterAll(() => c.stop());

const review = (uid: string) =>
  JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: { uid, kind: { group: '', version: 'v1', kind: 'Pod' }, operation: 'CREATE', object: { metadata: { name: 'p' } } },
  });

function h2post(path: string, body: string): Promise<{ status: number; body: string }> {
  const client = connect(c.webhookUrl.replace(/\/mutate$/, ''), { ca: c.tls.caPem });
  return new Promise((resolve, reject) => {
    const req = client.request({ ':method': 'POST', ':path': path, 'content-type': 'application/json' });
    let status = 0;
    let text = '';
    req.on('response', (h) => (status = Number(h[':status'])));
    req.on('data', (d) => (text += d));
    req.on('end', () => {
      client.close();
      resolve({ status, body: text });
    });
    req.on('error', reject);
    req.end(body);
  });
}

function h1post(path: string, body: string): Promise<{ status: number; body: string; protocol: string }> {
  const u = new URL(c.webhookUrl);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: u.hostname, port: u.port, path, method: 'POST', ca: c.tls.caPem, servername: 'localhost', headers: { 'content-type': 'application/json' } },
      (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, protocol: res.httpVersion }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('webhook server', () => {
  it('answers an AdmissionReview over HTTP/2 and over HTTP/1.1, echoing the uid and admitting', async () => {
    const a = await h2post('/mutate', review('uid-h2'));
    expect(a.status).toBe(200);
    expect(JSON.parse(a.body).response).toMatchObject({ uid: 'uid-h2', allowed: true });
    const b = await h1post('/mutate', review('uid-h1'));
    expect(b.protocol).toBe('1.1');
    expect(JSON.parse(b.body).response).toMatchObject({ uid: 'uid-h1', allowed: true });
  });

  it('says what is wrong with a bad body, and refuses bodies over the size limit', async () => {
    const notJson = await h2post('/mutate', '{nope');
    expect(notJson.status).toBe(400);
    expect(JSON.parse(notJson.body).message).toMatch(/not JSON/);
    const noUid = await h1post(
      '/mutate',
      JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { kind: { kind: 'Pod' }, operation: 'CREATE' } }),
    );
    expect(noUid.status).toBe(400);
    expect(JSON.parse(noUid.body).message).toMatch(/no uid/);
    const v1beta1 = await h1post('/mutate', JSON.stringify({ apiVersion: 'admission.k8s.io/v1beta1', kind: 'AdmissionReview', request: { uid: 'x' } }));
    expect(JSON.parse(v1beta1.body).message).toMatch(/admissionReviewVersions: \[v1\]/);
    const big = await h1post('/mutate', 'x'.repeat(10_000));
    expect(big.status).toBe(413);
    expect(JSON.parse(big.body).code).toBe('NEMU_ERR_PAYLOAD_TOO_LARGE');
  });

  it('serves health, readiness and Prometheus metrics', async () => {
    const u = c.webhookUrl.replace(/\/mutate$/, '');
    const client = connect(u, { ca: c.tls.caPem });
    const get = (path: string, token = 'admin-secret') =>
      new Promise<string>((resolve) => {
        const req = client.request({ ':path': path, authorization: `Bearer ${token}` });
        let t = '';
        req.on('data', (d) => (t += d));
        req.on('end', () => resolve(t));
        req.end();
      });
    expect(JSON.parse(await get('/readyz')).status).toBe('ready');
    expect(await get('/metrics')).toContain('nemutator_admission_reviews_total');
    expect(await get('/metrics')).toContain('nemutator_fleet_nodes');
    // /metrics needs a token allowed to read it; the probes do not
    expect(JSON.parse(await get('/metrics', 'wrong')).code).toBe('NEMU_ERR_UNAUTHORIZED');
    expect(JSON.parse(await get('/healthz', 'wrong')).status).toBe('ok');
    client.close();
  });
});

describe('REST API', () => {
  const api = () => c.apiUrl;
  it('needs a bearer token, and answers errors as { code, message }', async () => {
    const anon = await fetch(`${api()}/nodes`);
    expect(anon.status).toBe(401);
    expect(await anon.json()).toMatchObject({ code: 'NEMU_ERR_UNAUTHORIZED' });
    const wrong = await fetch(`${api()}/nodes`, { headers: { authorization: 'Bearer nope' } });
    expect(wrong.status).toBe(401);
    const auth = { authorization: 'Bearer admin-secret' };
    expect((await fetch(`${api()}/nodes`, { headers: auth })).status).toBe(200);
    const missing = await fetch(`${api()}/nodes/ghost`, { headers: auth });
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { message: string }).message).toMatch(/node ghost has never connected/);
    const nowhere = await fetch(`${api()}/nope`, { headers: auth });
    expect(nowhere.status).toBe(404);
    const method = await fetch(`${api()}/nodes`, { method: 'DELETE', headers: auth });
    expect(method.status).toBe(405);
    expect(((await method.json()) as { message: string }).message).toMatch(/use GET/);
    const status = (await (await fetch(`${api()}/status`, { headers: auth })).json()) as { status: string; mode: string };
    expect(status).toMatchObject({ status: 'ready', mode: 'local' });
  });
});
