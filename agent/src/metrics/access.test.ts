import { describe, expect, it } from 'vitest';

import { silentLogger } from '#common/log.js';

import type { AccessVerdict, ResourceAttributes, ReviewedUser, TokenVerdict } from '../kube/reviews.ts';
import { type AccessDecision, type AccessReviews, isLoopback, MetricsAccess, planMetricsAuth } from './access.ts';

/** An API server in miniature: tokens it knows, users it allows, and a switch to make it fail. */
class FakeReviews implements AccessReviews {
  tokenReviews = 0;
  accessReviews = 0;
  down = false;
  readonly tokens = new Map<string, string>();
  readonly allowed = new Set<string>();
  lastResource: ResourceAttributes | undefined;

  async reviewToken(token: string): Promise<TokenVerdict> {
    this.tokenReviews++;
    if (this.down) throw new Error(`connect ECONNREFUSED (while reviewing ${token})`);
    const username = this.tokens.get(token);
    return username
      ? { authenticated: true, user: { username, groups: ['system:authenticated'], extra: {} } }
      : { authenticated: false, reason: 'invalid bearer token' };
  }

  async reviewAccess(user: ReviewedUser, resource: ResourceAttributes): Promise<AccessVerdict> {
    this.accessReviews++;
    this.lastResource = resource;
    if (this.down) throw new Error('connect ECONNREFUSED');
    return { allowed: this.allowed.has(user.username) };
  }
}

function setup(opts: { maxEntries?: number } = {}) {
  const reviews = new FakeReviews();
  let clock = 1_000_000;
  const access = new MetricsAccess({ nodeName: 'node-1', reviews, log: silentLogger, now: () => clock, ...opts });
  return { reviews, access, advance: (ms: number) => (clock += ms) };
}

const status = (d: AccessDecision): number => (d.allowed ? 200 : d.status);

describe('who may read /metrics', () => {
  it('refuses a request without a bearer token with 401, asking the API server nothing', async () => {
    const { reviews, access } = setup();
    for (const header of [undefined, '', 'Basic dXNlcjpwdw==', 'Bearer ', 'Bearer a b']) {
      const d = access.check(header);
      expect('then' in d, String(header)).toBe(false);
      expect(status(d as AccessDecision)).toBe(401);
    }
    expect(reviews.tokenReviews).toBe(0);
  });

  it('asks for get nodes/metrics on its own node, as the kubelet does', async () => {
    const { reviews, access } = setup();
    reviews.tokens.set('tok', 'system:serviceaccount:monitoring:prometheus');
    reviews.allowed.add('system:serviceaccount:monitoring:prometheus');
    expect(status(await access.check('Bearer tok'))).toBe(200);
    expect(reviews.lastResource).toEqual({ verb: 'get', group: '', resource: 'nodes', subresource: 'metrics', name: 'node-1' });
  });

  it('does not review an allowed token again within a minute, and answers it without waiting', async () => {
    const { reviews, access, advance } = setup();
    reviews.tokens.set('tok', 'prom');
    reviews.allowed.add('prom');
    expect(status(await access.check('Bearer tok'))).toBe(200);
    for (let i = 0; i < 3; i++) {
      advance(15_000 - 1); // a 15 s scrape interval
      const d = access.check('Bearer tok');
      expect('then' in d).toBe(false);
      expect(status(d as AccessDecision)).toBe(200);
    }
    expect([reviews.tokenReviews, reviews.accessReviews]).toEqual([1, 1]);
    advance(20_000); // past 60 s since the review
    expect(status(await access.check('Bearer tok'))).toBe(200);
    expect([reviews.tokenReviews, reviews.accessReviews]).toEqual([2, 2]);
  });

  it('remembers a refusal for ten seconds only, so a new binding works soon', async () => {
    const { reviews, access, advance } = setup();
    reviews.tokens.set('tok', 'prom');
    const first = await access.check('Bearer tok');
    expect(status(first)).toBe(403);
    expect(!first.allowed && first.error.message).toMatch(/prom may not get nodes\/metrics \(node node-1\)/);
    reviews.allowed.add('prom');
    advance(9_000);
    expect(status(await access.check('Bearer tok'))).toBe(403);
    advance(1_001);
    expect(status(await access.check('Bearer tok'))).toBe(200);
    expect(reviews.tokenReviews).toBe(2);

    expect(status(await access.check('Bearer unknown'))).toBe(401);
    expect(status(await access.check('Bearer unknown'))).toBe(401);
    expect(reviews.tokenReviews).toBe(3);
  });

  it('answers 503 while the API server is down, remembers nothing, and never repeats the token', async () => {
    const { reviews, access } = setup();
    reviews.tokens.set('s3cret-token', 'prom');
    reviews.allowed.add('prom');
    reviews.down = true;
    const d = await access.check('Bearer s3cret-token');
    expect(status(d)).toBe(503);
    expect(JSON.stringify(d)).not.toContain('s3cret-token');
    reviews.down = false;
    expect(status(await access.check('Bearer s3cret-token'))).toBe(200);
    expect(reviews.tokenReviews).toBe(2);
  });

  it('shares one review among concurrent scrapes with the same token', async () => {
    const { reviews, access } = setup();
    reviews.tokens.set('tok', 'prom');
    reviews.allowed.add('prom');
    const all = await Promise.all([access.check('Bearer tok'), access.check('Bearer tok'), access.check('Bearer tok')]);
    expect(all.map(status)).toEqual([200, 200, 200]);
    expect(reviews.tokenReviews).toBe(1);
  });

  it('remembers a bounded number of tokens, forgetting the oldest', async () => {
    const { reviews, access } = setup({ maxEntries: 2 });
    for (const t of ['a', 'b', 'c']) {
      reviews.tokens.set(t, 'prom');
      await access.check(`Bearer ${t}`);
    }
    reviews.allowed.add('prom');
    expect(access.size).toBe(2);
    expect(status(await access.check('Bearer a'))).toBe(200); // forgotten, so reviewed again
    expect(status(await access.check('Bearer c'))).toBe(403); // still remembered
  });
});

describe('how /metrics is guarded', () => {
  const cfg = (metricsAuth: 'auto' | 'kube' | 'none', host: string) => ({ metricsAuth, host, metricsPort: 9101 });

  it('reviews callers whenever there is an API server, unless told not to', () => {
    expect(planMetricsAuth(cfg('auto', '0.0.0.0'), true)).toEqual({ mode: 'kube' });
    expect(planMetricsAuth(cfg('auto', '127.0.0.1'), true)).toEqual({ mode: 'kube' });
    expect(planMetricsAuth(cfg('kube', '0.0.0.0'), true)).toEqual({ mode: 'kube' });
    expect(planMetricsAuth(cfg('none', '127.0.0.1'), true)).toEqual({ mode: 'open' });
  });

  it('without an API server serves openly only on loopback, and refuses to start otherwise', () => {
    expect(planMetricsAuth(cfg('auto', '127.0.0.1'), false)).toEqual({ mode: 'open' });
    expect(planMetricsAuth(cfg('auto', '::1'), false)).toEqual({ mode: 'open' });
    expect(() => planMetricsAuth(cfg('auto', '0.0.0.0'), false)).toThrow(/host = 0\.0\.0\.0.*--host 127\.0\.0\.1.*--kubeconfig.*--metrics-auth none/);
    expect(() => planMetricsAuth(cfg('kube', '127.0.0.1'), false)).toThrow(
      expect.objectContaining({ code: 'NEMU_ERR_CONFIG', message: expect.stringMatching(/metricsAuth is kube/) }),
    );
  });

  it('warns when told to serve openly beyond loopback', () => {
    expect(planMetricsAuth(cfg('none', '0.0.0.0'), false)).toEqual({
      mode: 'open',
      warning: expect.stringMatching(/without authentication to anyone who reaches 0\.0\.0\.0:9101/),
    });
  });

  it('knows loopback addresses', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost', '::ffff:127.0.0.1']) expect(isLoopback(h), h).toBe(true);
    for (const h of ['0.0.0.0', '::', '10.0.0.1', '128.0.0.1', 'example.com', '']) expect(isLoopback(h), h).toBe(false);
  });
});
