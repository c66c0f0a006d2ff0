// The REST API server's guard rails, without a cluster: routes must declare a permission,
// callers are limited per identity, an `object` route that forgets to authorize answers
// nothing, and authorizer decisions are cached briefly.
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';

import { silentLogger } from '#common/log.js';

import { type Access, type Authorizer, SubjectAccessReviewAuthorizer } from './access.ts';
import { type ApiServer, createApiServer } from './api.ts';
import { RateLimiter } from './rate-limit.ts';
import { type Authenticator, type Identity, Router } from './router.ts';

const alice: Identity = { username: 'alice', groups: ['devs'] };
const bob: Identity = { username: 'bob', groups: ['devs'] };
const auth: Authenticator = { authenticate: async (h) => (h === 'Bearer alice' ? alice : h === 'Bearer bob' ? bob : undefined) };
const allowAll: Authorizer = { decide: async () => ({ allowed: true }) };

let running: ApiServer | undefined;
afterEach(async () => {
  await new Promise<void>((r) => (running ? running.server.close(() => r()) : r()));
  running = undefined;
});

async function serve(router: Router, opts: { authorizer?: Authorizer; rate?: number; burst?: number } = {}): Promise<string> {
  running = createApiServer({
    router,
    auth,
    authorizer: opts.authorizer ?? allowAll,
    log: silentLogger,
    rateLimit: { rate: opts.rate ?? 0, burst: opts.burst ?? 1 },
  });
  await new Promise<void>((r) => running!.server.listen(0, '127.0.0.1', () => r()));
  return `http://127.0.0.1:${(running.server.address() as AddressInfo).port}`;
}

describe('Router', () => {
  it('refuses to register a route without a valid permission', () => {
    const r = new Router();
    expect(() => r.get('/api/v1/x', undefined as unknown as Access, () => ({}))).toThrow(/declares no valid permission/);
    expect(() => r.post('/api/v1/x', { verb: 'patch', resource: 'x', scope: 'cluster' } as unknown as Access, () => ({}))).toThrow(
      /declares no valid permission/,
    );
    expect(() => r.delete('/api/v1/x/{id}', { verb: 'delete', resource: 'x', scope: 'param:namespace' }, () => ({}))).toThrow(/lacks/);
    expect(r.list()).toEqual([]);
  });
});

describe('REST API server', () => {
  it('answers 429 with Retry-After past one identity’s budget, without touching another’s', async () => {
    const base = await serve(
      new Router().get('/api/v1/x', { verb: 'get', resource: 'x', scope: 'cluster' }, () => ({ ok: true })),
      { rate: 1, burst: 2 },
    );
    const get = (who: string) => fetch(`${base}/api/v1/x`, { headers: { authorization: `Bearer ${who}` } });
    expect((await get('alice')).status).toBe(200);
    expect((await get('alice')).status).toBe(200);
    const limited = await get('alice');
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(((await limited.json()) as { code: string }).code).toBe('NEMU_ERR_RATE_LIMITED');
    expect((await get('bob')).status).toBe(200);
  });

  it('checks an object-scoped route in the object’s namespace before its handler runs, and answers "not yours" and "no such object" alike', async () => {
    const owners: Record<string, string> = { mine: 'a', theirs: 'b' };
    const ran: string[] = [];
    const authorizer: Authorizer = { decide: async (_u, p, ns) => ({ allowed: ns === 'a' || (p.verb === 'get' && ns === 'c') }) };
    const router = new Router().post(
      '/api/v1/x/{id}/undo',
      { verb: 'create', resource: 'x', subresource: 'undo', scope: { object: async (req) => owners[req.params.id!] ?? null } },
      (req) => {
        ran.push(req.params.id!);
        return { done: true };
      },
    );
    const base = await serve(router, { authorizer });
    const post = (id: string) => fetch(`${base}/api/v1/x/${id}/undo`, { method: 'POST', headers: { authorization: 'Bearer alice' } });
    expect((await post('mine')).status).toBe(200);
    const theirs = await post('theirs');
    const unknown = await post('nope');
    expect([theirs.status, unknown.status]).toEqual([403, 403]);
    const [a, b] = [(await theirs.json()) as { message: string }, (await unknown.json()) as { message: string }];
    expect(a.message).toContain('may not create x/undo.nemutator.io on object theirs, or it does not exist');
    expect(b.message).toContain('may not create x/undo.nemutator.io on object nope, or it does not exist');
    expect(a.message).not.toContain('namespace b');
    // A caller who may read the object there is told where it lives.
    owners.readable = 'c';
    expect(((await (await post('readable')).json()) as { message: string }).message).toContain('may not create x/undo.nemutator.io in namespace c');
    expect(ran).toEqual(['mine']);
  });

  it('checks a param-scoped route in that namespace, and says which permission is missing', async () => {
    const asked: Array<string | undefined> = [];
    const authorizer: Authorizer = { decide: async (_u, _p, ns) => (asked.push(ns), { allowed: ns === 'a' }) };
    const base = await serve(
      new Router().delete('/api/v1/things/{namespace}/{name}', { verb: 'delete', resource: 'things', subresource: 'sub', scope: 'param:namespace' }, () => ({
        status: 204,
      })),
      { authorizer },
    );
    expect((await fetch(`${base}/api/v1/things/a/one`, { method: 'DELETE', headers: { authorization: 'Bearer alice' } })).status).toBe(204);
    const refused = await fetch(`${base}/api/v1/things/b/one`, { method: 'DELETE', headers: { authorization: 'Bearer alice' } });
    expect(refused.status).toBe(403);
    const body = (await refused.json()) as { code: string; message: string };
    expect(body.code).toBe('NEMU_ERR_FORBIDDEN');
    expect(body.message).toContain('alice may not delete things/sub.nemutator.io in namespace b');
    expect(asked).toEqual(['a', 'b']);
  });

  it('answers 401 as JSON without a token, and 400 for a request target the URL parser rejects', async () => {
    const base = await serve(new Router().get('/api/v1/x', { verb: 'get', resource: 'x', scope: 'cluster' }, () => ({})));
    const anonymous = await fetch(`${base}/api/v1/x`);
    expect(anonymous.status).toBe(401);
    expect(((await anonymous.json()) as { code: string }).code).toBe('NEMU_ERR_UNAUTHORIZED');
    const { request } = await import('node:http');
    for (const target of ['http://[', 'http://%zz/', 'https://[::1/', 'http://x:99999/', 'http://[::1]:abc/']) {
      const status = await new Promise<number>((resolve, reject) => {
        const req = request(base, { path: target, method: 'GET' }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end();
      });
      expect(status, target).toBe(400);
    }
    expect((await fetch(`${base}/api/v1/x`, { headers: { authorization: 'Bearer alice' } })).status).toBe(200);
  });
});

describe('SubjectAccessReviewAuthorizer', () => {
  it('asks once per user, groups, verb, resource and namespace within the TTL; a refusal is forgotten sooner', async () => {
    let now = 0;
    const bodies: unknown[] = [];
    let allow = false;
    const reviewer = {
      createSubjectAccessReview: async (p: { body: unknown }) => {
        bodies.push(p.body);
        return { status: { allowed: allow } };
      },
    };
    const authz = new SubjectAccessReviewAuthorizer(reviewer, { allowTtlMs: 10_000, denyTtlMs: 2_000, now: () => now });
    const p = { verb: 'get', resource: 'mutations' } as const;
    expect((await authz.decide(alice, p, 'shop')).allowed).toBe(false);
    allow = true;
    expect((await authz.decide(alice, p, 'shop')).allowed).toBe(false);
    now = 2_001;
    expect((await authz.decide(alice, p, 'shop')).allowed).toBe(true);
    now = 11_000;
    expect((await authz.decide(alice, p, 'shop')).allowed).toBe(true);
    expect(bodies).toHaveLength(2);
    await authz.decide(alice, p, 'other');
    await authz.decide({ ...alice, groups: ['admins'] }, p, 'shop');
    expect(bodies).toHaveLength(4);
    expect((bodies[0] as { spec: unknown }).spec).toEqual({
      user: 'alice',
      groups: ['devs'],
      resourceAttributes: { group: 'nemutator.io', resource: 'mutations', verb: 'get', namespace: 'shop' },
    });
    // system:masters is never asked, as in the API server
    expect((await authz.decide({ username: 'root', groups: ['system:masters'] }, p, undefined)).allowed).toBe(true);
    expect(bodies).toHaveLength(4);
  });

  it('answers 503 NEMU_ERR_AUTHZ_UNAVAILABLE when the API server does not answer', async () => {
    const authz = new SubjectAccessReviewAuthorizer({ createSubjectAccessReview: async () => Promise.reject(new Error('connect ECONNREFUSED')) });
    await expect(authz.decide(alice, { verb: 'get', resource: 'x' }, undefined)).rejects.toMatchObject({ code: 'NEMU_ERR_AUTHZ_UNAVAILABLE', status: 503 });
  });
});

describe('RateLimiter', () => {
  it('refills at its rate and keeps its map bounded', () => {
    let now = 0;
    const l = new RateLimiter({ rate: 2, burst: 2 }, { maxKeys: 3, now: () => now });
    expect([l.take('a'), l.take('a'), l.take('a')]).toEqual([0, 0, 1]);
    now = 500;
    expect(l.take('a')).toBe(0);
    for (const k of ['b', 'c', 'd', 'e', 'f', 'g']) {
      l.take(k);
      l.take(k);
    }
    expect(l.size).toBeLessThanOrEqual(3);
    expect(l.take('g')).toBe(1); // the most recent caller is still held to its budget
  });
});

describe('TokenReviewAuthenticator', () => {
  it('answers 503 NEMU_ERR_AUTHZ_UNAVAILABLE when the API server fails, without the token in the message', async () => {
    const { TokenReviewAuthenticator } = await import('./auth.ts');
    const token = 'eyJhbGciOiJSUzI1NiJ9.secret-part.sig';
    const a = new TokenReviewAuthenticator({ review: async (t) => Promise.reject(new Error(`request with Authorization: Bearer ${t} failed: ECONNRESET`)) });
    const err = await a.authenticate(`Bearer ${token}`).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'NEMU_ERR_AUTHZ_UNAVAILABLE', status: 503 });
    expect((err as Error).message).not.toContain('secret-part');
  });

  it('refuses a token the API server accepted without the audience asked for', async () => {
    const { createServer } = await import('node:http');
    const { KubeConfig } = await import('@kubernetes/client-node');
    const { TokenReviewer } = await import('../kube/tokenreview.ts');
    // An authenticator that ignores audiences: authenticated, but status.audiences is empty.
    const api = createServer((req, res) => {
      req.resume();
      req.on('end', () =>
        res.writeHead(201, { 'content-type': 'application/json' }).end(
          JSON.stringify({
            apiVersion: 'authentication.k8s.io/v1',
            kind: 'TokenReview',
            status: { authenticated: true, user: { username: 'someone', groups: [] } },
          }),
        ),
      );
    });
    await new Promise<void>((r) => api.listen(0, '127.0.0.1', () => r()));
    try {
      const kc = new KubeConfig();
      kc.loadFromOptions({
        clusters: [{ name: 'c', server: `http://127.0.0.1:${(api.address() as AddressInfo).port}`, skipTLSVerify: true }],
        users: [{ name: 'u', token: 'x' }],
        contexts: [{ name: 'c', cluster: 'c', user: 'u' }],
        currentContext: 'c',
      });
      const verdict = await new TokenReviewer(kc, { audiences: ['nemutator'] }).review('a.b.c');
      expect(verdict).toMatchObject({ authenticated: false, reason: expect.stringContaining('not issued for nemutator') });
      expect((await new TokenReviewer(kc).review('a.b.c')).authenticated).toBe(true);
    } finally {
      api.close();
    }
  });
});
