// The webhook server's own bookkeeping, without a controller around it.
import { Agent, request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:tls';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { silentLogger } from '#common/log.js';
import { until } from '#test/harness/wait.js';

import { passThroughHandler } from '../admission/handler.ts';
import { createCa, issueServingCert } from '../certs/authority.ts';
import { localAuthorizer } from './access.ts';
import { metricsGuard } from './metrics-guard.ts';
import { createWebhookServer, type WebhookServer } from './webhook.ts';

let webhook: WebhookServer;
let registry: Registry;
let ca: string;
let port: number;
beforeAll(async () => {
  const authority = await createCa('test-ca', 1);
  ca = authority.certPem;
  const cert = await issueServingCert(authority, { dnsNames: ['localhost'], ips: ['127.0.0.1'] }, 1);
  webhook = createWebhookServer({
    cert: cert.certPem,
    key: cert.keyPem,
    handler: passThroughHandler(silentLogger),
    registry: (registry = new Registry()),
    log: silentLogger,
    ready: () => true,
    metricsGuard: metricsGuard(
      {
        async authenticate(authorization) {
          if (authorization === 'Bearer admin') return { username: 'admin', groups: ['system:masters'] };
          return authorization === 'Bearer viewer' ? { username: 'viewer', groups: [] } : undefined;
        },
      },
      localAuthorizer,
    ),
  });
  await new Promise<void>((r) => webhook.server.listen(0, '127.0.0.1', () => r()));
  port = (webhook.server.address() as AddressInfo).port;
});
afterAll(() => webhook.close());

describe('webhook server', () => {
  it('keeps one close listener per kept-alive HTTP/1.1 connection, however many reviews it answers', async () => {
    let socket: import('node:net').Socket | undefined;
    webhook.server.once('secureConnection', (s) => (socket = s));
    const agent = new Agent({ keepAlive: true, maxSockets: 1, ca });
    const body = JSON.stringify({
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: { uid: 'u', kind: { group: '', version: 'v1', kind: 'Pod' }, operation: 'CREATE', object: {} },
    });
    const post = () =>
      new Promise<number>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path: '/mutate', method: 'POST', agent, headers: { 'content-type': 'application/json' } }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', reject);
        req.end(body);
      });
    for (let i = 0; i < 40; i++) expect(await post()).toBe(200);
    expect(socket).toBeDefined();
    expect(socket!.listenerCount('close')).toBeLessThan(10);
    agent.destroy();
  });

  it('does not count a review the client broke off as refused for its size', async () => {
    const refused = async () =>
      (await registry.getSingleMetric('nemutator_webhook_refused_total')!.get()).values.filter((v) => v.value > 0).map((v) => v.labels.reason);
    const socket = connect({ host: '127.0.0.1', port, ca, servername: 'localhost', ALPNProtocols: ['http/1.1'] });
    await new Promise((r) => socket.once('secureConnect', r));
    socket.write('POST /mutate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{"apiVersion":');
    await until('the review in flight', () => webhook.reviewsInFlight === 1);
    socket.destroy();
    await until('the review given up', () => webhook.reviewsInFlight === 0);
    expect(await refused()).toEqual([]);
  });
  it('serves /metrics only to a token allowed to get metrics.nemutator.io: 401, 403 and 429 with their codes; probes stay open', async () => {
    const get = (path: string, token?: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path, ca, headers: token ? { authorization: `Bearer ${token}` } : {} }, (res) => {
          let body = '';
          res.on('data', (d) => (body += d)).on('end', () => resolve({ status: res.statusCode!, body }));
        });
        req.on('error', reject).end();
      });
    expect((await get('/healthz')).status).toBe(200);
    expect((await get('/readyz')).status).toBe(200);
    const anonymous = await get('/metrics');
    expect(anonymous.status).toBe(401);
    expect(JSON.parse(anonymous.body).code).toBe('NEMU_ERR_UNAUTHORIZED');
    const viewer = await get('/metrics', 'viewer');
    expect(viewer.status).toBe(403);
    expect(JSON.parse(viewer.body).code).toBe('NEMU_ERR_FORBIDDEN');
    expect(JSON.parse(viewer.body).message).toContain('nemutator-metrics-scraper');
    const admin = await get('/metrics', 'admin');
    expect(admin.status).toBe(200);
    expect(admin.body).not.toContain('NEMU_ERR');
    // Refused tokens are bounded per address before any token review is spent on them.
    let last = anonymous;
    for (let i = 0; i < 40 && last.status !== 429; i++) last = await get('/metrics', `guess-${i}`);
    expect(last.status).toBe(429);
    expect(JSON.parse(last.body).code).toBe('NEMU_ERR_RATE_LIMITED');
  });
});
