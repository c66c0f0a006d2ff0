// The same contract for both stores: the embedded one (one replica, local mode) and Redis
// (replicas sharing the mutation log, skip rules and profiles).
import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { describe, expect, inject, it } from 'vitest';

import type { NemuError } from '#common/errors.js';
import { SkipRules } from '#controller/admission/skip-rules.js';
import { LevelStore } from '#controller/store/level.js';
import { RedisStore } from '#controller/store/redis.js';
import type { Store, StoreWatcher } from '#controller/store/store.js';

import { until } from '../harness/wait.ts';

const stores: Array<[string, () => Promise<Store>]> = [
  ['embedded (LevelDB)', () => LevelStore.open(join(mkdtempSync(join(tmpdir(), 'nemu-sc-')), 'db'))],
  ['Redis', () => RedisStore.open(inject('redisUrl'), `test:${randomUUID()}:`)],
];

describe.each(stores)('store: %s', (_name, open) => {
  it('gets, puts, deletes and lists by prefix in key order, forwards and backwards, with limits and resume', async () => {
    const s = await open();
    try {
      await s.batch([
        { type: 'put', key: 'mutations/0003', value: { n: 3 } },
        { type: 'put', key: 'mutations/0001', value: { n: 1 } },
        { type: 'put', key: 'mutations/0002', value: { n: 2, nested: { a: [1, 'x'] } } },
        { type: 'put', key: 'profiles/0001', value: { hz: 49 } },
        { type: 'put', key: 'mutationsX', value: 'not in the collection' },
      ]);
      expect(await s.get('mutations/0002')).toEqual({ n: 2, nested: { a: [1, 'x'] } });
      expect(await s.get('missing')).toBeUndefined();
      const keys = async (p: string, o = {}) => (await s.list(p, o)).map((e) => e.key);
      expect(await keys('mutations/')).toEqual(['mutations/0001', 'mutations/0002', 'mutations/0003']);
      expect(await keys('mutations/', { reverse: true, limit: 2 })).toEqual(['mutations/0003', 'mutations/0002']);
      expect(await keys('mutations/', { after: 'mutations/0001' })).toEqual(['mutations/0002', 'mutations/0003']);
      expect(await keys('mutations/', { after: 'mutations/0003', reverse: true })).toEqual(['mutations/0002', 'mutations/0001']);
      await s.put('mutations/0001', { n: 10 });
      expect(await s.get('mutations/0001')).toEqual({ n: 10 });
      await s.batch([
        { type: 'del', key: 'mutations/0001' },
        { type: 'put', key: 'mutations/0004', value: { n: 4 } },
      ]);
      expect(await keys('mutations/')).toEqual(['mutations/0002', 'mutations/0003', 'mutations/0004']);
      await s.del('mutations/0002');
      expect(await s.get('mutations/0002')).toBeUndefined();
      expect(await keys('profiles/')).toEqual(['profiles/0001']);
    } finally {
      await s.close();
    }
  });
});

describe('store: Redis', () => {
  it('says what to do when Redis cannot be reached, without printing the password', async () => {
    const e = (await RedisStore.open('redis://:hunter2@127.0.0.1:1/0', 'x:', { timeoutMs: 300 }).catch((err: unknown) => err)) as NemuError;
    expect(e.code).toBe('NEMU_ERR_STORE');
    expect(e.message).toContain('cannot reach the store in Redis at redis://:***@127.0.0.1:1/0');
    expect(e.message).toContain('redisUrl');
    expect(e.message).toContain('--store embedded');
    expect(e.message).not.toContain('hunter2');
  });

  it('is shared: what one replica writes, another lists', async () => {
    const prefix = `test:${randomUUID()}:`;
    const a = await RedisStore.open(inject('redisUrl'), prefix);
    const b = await RedisStore.open(inject('redisUrl'), prefix);
    try {
      expect(a.shared).toBe(true);
      await a.put('skip-rules/shop/Deployment/web', { verbs: ['env'] });
      expect(await b.list('skip-rules/')).toEqual([{ key: 'skip-rules/shop/Deployment/web', value: { verbs: ['env'] } }]);
    } finally {
      await a.close();
      await b.close();
    }
  });
});

describe('store: Redis, watched by replicas that keep a copy', () => {
  const pod = {
    metadata: {
      name: 'web-7d9f8-abcde',
      labels: { 'pod-template-hash': '7d9f8' },
      ownerReferences: [{ kind: 'ReplicaSet', name: 'web-7d9f8', controller: true }],
    },
  };

  function recorder(): StoreWatcher & { keys: string[][]; states: boolean[] } {
    const r = { keys: [] as string[][], states: [] as boolean[], changed: (k: string[]) => void r.keys.push(k), live: (l: boolean) => void r.states.push(l) };
    return r;
  }

  it('tells a watcher which keys under its prefix another replica wrote, one notice per batch', async () => {
    const prefix = `test:${randomUUID()}:`;
    const a = await RedisStore.open(inject('redisUrl'), prefix);
    const b = await RedisStore.open(inject('redisUrl'), prefix);
    try {
      const w = recorder();
      const stop = b.watch('skip-rules/', w);
      await until('the watch to be live', () => w.states.at(-1) === true, 5000);
      await a.batch([
        { type: 'put', key: 'skip-rules/shop/Deployment/web', value: { verbs: ['env'] } },
        { type: 'put', key: 'mutations/0001', value: { n: 1 } },
        { type: 'put', key: 'skip-rules/shop/Deployment/api', value: { verbs: ['image'] } },
      ]);
      await a.del('skip-rules/shop/Deployment/web');
      await until('two notices', () => w.keys.length >= 2, 5000);
      expect(w.keys).toEqual([['skip-rules/shop/Deployment/web', 'skip-rules/shop/Deployment/api'], ['skip-rules/shop/Deployment/web']]);
      stop();
      expect(w.states.at(-1)).toBe(false);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('a rule one replica writes holds on another at once, and still does while the other cannot hear notices', async () => {
    const url = inject('redisUrl');
    const prefix = `test:${randomUUID()}:`;
    const a = await RedisStore.open(url, prefix);
    const b = await RedisStore.open(url, prefix);
    const admin = new Redis(url);
    const rulesA = new SkipRules(a);
    const rulesB = new SkipRules(b);
    try {
      expect(await rulesB.verbsFor('Pod', 'shop', pod)).toEqual([]);
      await rulesA.add({ namespace: 'shop', kind: 'Deployment', name: 'web', verbs: ['env', 'image'], createdAt: new Date().toISOString() });
      // B keeps the rules in memory; A's write reaches it as a notice (sub-millisecond on loopback).
      await until("replica B to apply replica A's rule", async () => (await rulesB.verbsFor('Pod', 'shop', pod)).length === 2, 1000, 1);
      expect(await rulesB.verbsFor('Pod', 'shop', pod)).toEqual(['env', 'image']);

      // B's subscriber connection is cut: B may miss notices, so it reads Redis on every review.
      await admin.client('KILL', 'TYPE', 'pubsub');
      await rulesA.remove('shop', 'Deployment', 'web');
      expect(await rulesB.verbsFor('Pod', 'shop', pod)).toEqual([]);
      await rulesA.add({ namespace: 'shop', kind: 'ReplicaSet', name: 'web-7d9f8', verbs: ['resources'], createdAt: new Date().toISOString() });
      expect(await rulesB.verbsFor('Pod', 'shop', pod)).toEqual(['resources']);
      // Reconnected, B is back on its copy, reloaded with what it missed.
      await until('B to reconnect', async () => String(await admin.call('CLIENT', 'LIST', 'TYPE', 'pubsub')).includes('sub=1'), 5000);
      expect(await rulesB.verbsFor('Pod', 'shop', pod)).toEqual(['resources']);
    } finally {
      rulesA.close();
      rulesB.close();
      admin.disconnect();
      await a.close();
      await b.close();
    }
  });
});
