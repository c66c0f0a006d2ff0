// The Redis dictionary against a real redis-server: one MGET per review, invalidation across
// replicas by pub/sub, a bounded failure when Redis is down, and recovery when it returns.
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import { silentLogger } from '#common/log.js';
import { type RedisServer, startRedis } from '#test/harness/redis.js';
import { until } from '#test/harness/wait.js';

import { createAdmissionHandler } from '../admission/handler.ts';
import { createControllerMetrics } from '../metrics.ts';
import { RedisDictionary } from './redis.ts';

const prefix = `t${process.pid}-${Date.now()}:`;
const dicts: RedisDictionary[] = [];
function open(url: string, over: Partial<ConstructorParameters<typeof RedisDictionary>[0]> = {}) {
  const d = new RedisDictionary({ target: url, keyPrefix: prefix, log: silentLogger, cacheTtlMs: 60_000, ...over });
  dicts.push(d);
  return d;
}
afterAll(async () => {
  for (const d of dicts) await d.close();
});

type Metrics = ReturnType<typeof createControllerMetrics>;
async function okRoundTrips(metrics: Metrics): Promise<number> {
  return Number(/nemutator_dictionary_round_trips_total\{backend="redis",result="ok"\} (\d+)/.exec(await metrics.registry.metrics())?.[1] ?? 0);
}

/** Until `d` answers a repeated lookup of `key` from its cache: its invalidation subscription is live. */
async function cacheLive(d: RedisDictionary, metrics: Metrics, key: string): Promise<void> {
  await until('the dictionary cache is live (subscribed)', async () => {
    await d.lookup([key]);
    const before = await okRoundTrips(metrics);
    await d.lookup([key]);
    return (await okRoundTrips(metrics)) === before;
  });
}

describe('RedisDictionary on the shared redis', () => {
  it('sets, gets, lists and deletes under its key prefix, and looks many keys up at once', async () => {
    const d = open(inject('redisUrl'));
    await d.ready();
    await d.set('nemu_label_a', 'team');
    await d.set('nemu_label_value_b', 'payments');
    await d.set('other', 'x');
    expect(await d.get('nemu_label_a')).toBe('team');
    expect(await d.lookup(['nemu_label_a', 'nemu_label_value_b', 'nemu_missing'])).toEqual(
      new Map([
        ['nemu_label_a', 'team'],
        ['nemu_label_value_b', 'payments'],
      ]),
    );
    expect(await d.list({ prefix: 'nemu_label' })).toEqual([
      { key: 'nemu_label_a', value: 'team' },
      { key: 'nemu_label_value_b', value: 'payments' },
    ]);
    expect(await d.del('other')).toBe(true);
    expect(await d.del('other')).toBe(false);
  });

  it('a change made through one replica reaches another replica’s cache at once', async () => {
    const url = inject('redisUrl');
    const a = open(url);
    const metrics = createControllerMetrics(false);
    const b = open(url, { metrics });
    await Promise.all([a.ready(), b.ready()]);
    await a.set('nemu_env_x', 'one');
    await cacheLive(b, metrics, 'nemu_env_x');
    expect((await b.lookup(['nemu_env_x'])).get('nemu_env_x')).toBe('one'); // cached in b for 60 s
    await a.set('nemu_env_x', 'two');
    await expect.poll(async () => (await b.lookup(['nemu_env_x'])).get('nemu_env_x'), { timeout: 2000 }).toBe('two');
  });

  it('counts round trips but not cache hits', async () => {
    const metrics = createControllerMetrics(false);
    const d = open(inject('redisUrl'), { metrics });
    await d.ready();
    await cacheLive(d, metrics, 'k1');
    const trips = await okRoundTrips(metrics);
    await d.lookup(['k1']);
    expect(await okRoundTrips(metrics), 'a cache hit costs no round trip').toBe(trips);
    await d.lookup(['k1', 'k2', 'k3']);
    expect(await okRoundTrips(metrics), 'the keys not cached are fetched in one round trip').toBe(trips + 1);
  });
});

describe('Redis stopping mid-test', () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(() => redis.stop());

  const body = (uid: string) =>
    Buffer.from(
      JSON.stringify({
        apiVersion: 'admission.k8s.io/v1',
        kind: 'AdmissionReview',
        request: {
          uid,
          kind: { group: '', version: 'v1', kind: 'Pod' },
          operation: 'CREATE',
          namespace: 'web',
          object: { metadata: { name: 'p', labels: { nemu_label_a: 'x' } }, spec: { containers: [{ name: 'c', image: 'busybox' }] } },
        },
      }),
    );

  it('admits unmutated with NEMU_ERR_DICT_UNREACHABLE within the bound, and mutates again when Redis returns', async () => {
    const d = open(redis.url, { timeoutMs: 200 });
    await d.ready();
    await d.set('nemu_label_a', 'team');
    const h = createAdmissionHandler({ log: silentLogger, dictionary: d });
    expect((await h.review(body('1'))).response.patch).toBeDefined();

    await redis.stop().catch(() => undefined);
    const started = performance.now();
    const down = await h.review(body('2'));
    expect(performance.now() - started).toBeLessThan(1000);
    expect(down.response).toMatchObject({ uid: '2', allowed: true });
    expect(down.response.patch).toBeUndefined();
    expect(down.response.warnings?.[0]).toMatch(/^NEMU_ERR_DICT_UNREACHABLE: redis at 127\.0\.0\.1:\d+ .*admitted unchanged$/);

    // stop() removed the data directory: the entry is written again once Redis is back
    await redis.restart();
    await expect
      .poll(
        () =>
          d.set('nemu_label_a', 'team').then(
            () => true,
            () => false,
          ),
        { timeout: 10_000, interval: 100 },
      )
      .toBe(true);
    const back = await h.review(body('3'));
    expect(back.response.warnings).toBeUndefined();
    expect(back.response.patch).toBeDefined();
  });
});
