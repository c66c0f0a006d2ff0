// The store and the dictionary on a master that real redis-sentinel processes watch: found
// through the sentinels, a write counted only once replicas hold it (WAIT), a clear failure
// when they do not, and both clients back on the new master after a failover.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { NemuError } from '#common/errors.js';
import { silentLogger } from '#common/log.js';
import { startController } from '#controller/app.js';
import { RedisDictionary } from '#controller/dictionary/redis.js';
import { controllerFeatures } from '#controller/features.js';
import { SharedTokenAgentAuthenticator } from '#controller/fleet/auth.js';
import type { RedisTarget } from '#controller/redis/target.js';
import { localAuthorizer } from '#controller/server/access.js';
import { StaticTokenAuthenticator } from '#controller/server/auth.js';
import { RedisStore } from '#controller/store/redis.js';

import { testControllerConfig } from '../harness/controller.ts';
import { command, type SentinelGroup, startSentinelGroup } from '../harness/sentinel.ts';
import { until } from '../harness/wait.ts';

let group: SentinelGroup;
let target: RedisTarget;
beforeAll(async () => {
  group = await startSentinelGroup({ replicas: 2, sentinels: 3, downAfterMs: 1000, failoverTimeoutMs: 2000 });
  target = { kind: 'sentinel', sentinels: group.sentinels, masterName: group.masterName };
}, 60_000);
afterAll(async () => {
  await group?.stop();
});

describe('store through Redis Sentinel', () => {
  it('writes to the master the sentinels name, and with redisWaitReplicas a write returns once that many replicas hold it', async () => {
    const prefix = `t:${randomUUID()}:`;
    const store = await RedisStore.open(target, prefix, { waitReplicas: 1, waitTimeoutMs: 2000 });
    try {
      await store.batch([
        { type: 'put', key: 'mutations/0001', value: { n: 1 } },
        { type: 'put', key: 'mutations/0002', value: { n: 2 } },
      ]);
      // Already on a replica when batch() returns, not merely on its way there.
      const replicas = await replicaPorts();
      const held = await Promise.all(replicas.map((p) => command(p, ['GET', `${prefix}kv:mutations/0002`])));
      expect(held).toContain('{"n":2}');
      expect(await store.get('mutations/0001')).toEqual({ n: 1 });
    } finally {
      await store.close();
    }
  });

  it('fails a write that fewer replicas than redisWaitReplicas acknowledge in time, with NEMU_ERR_STORE naming the keys', async () => {
    const store = await RedisStore.open(target, `t:${randomUUID()}:`, { waitReplicas: 5, waitTimeoutMs: 50 });
    try {
      const e = (await store.put('mutations/0001', { n: 1 }).catch((err: unknown) => err)) as NemuError;
      expect(e.code).toBe('NEMU_ERR_STORE');
      expect(e.message).toMatch(/reached [0-2] of the 5 replica\(s\) redisWaitReplicas asks for within redisWaitTimeout \(50 ms\)/);
      expect(e.message).toContain(`master "${group.masterName}" via sentinels`);
    } finally {
      await store.close();
    }
  });

  it('says what to check when no sentinel answers', async () => {
    const started = Date.now();
    const e = (await RedisStore.open({ kind: 'sentinel', sentinels: [{ host: '127.0.0.1', port: 1 }], masterName: 'nowhere' }, 'x:', { timeoutMs: 300 }).catch(
      (err: unknown) => err,
    )) as NemuError;
    expect(Date.now() - started).toBeLessThan(5000); // bounded by timeoutMs, not retried forever
    expect(e.code).toBe('NEMU_ERR_STORE');
    expect(e.message).toContain('redisSentinels and redisMasterName');
  });

  it('refuses redisWaitReplicas when the store is not in Redis', async () => {
    const config = testControllerConfig({ redisWaitReplicas: 1, store: 'embedded', dictionary: 'embedded' });
    const deps = {
      log: silentLogger,
      mode: 'local' as const,
      apiAuth: new StaticTokenAuthenticator('t'),
      authorizer: localAuthorizer,
      agentAuth: new SharedTokenAgentAuthenticator('x'),
      ...controllerFeatures(),
    };
    const e = (await startController(config, deps).catch((err: unknown) => err)) as NemuError;
    expect(e.code).toBe('NEMU_ERR_CONFIG');
    expect(e.message).toContain('redisWaitReplicas is set but the store is not in Redis');
  });

  it('store and dictionary follow a failover: after kill -9 of the master both work on the promoted replica, and what WAIT acknowledged is there', async () => {
    const prefix = `t:${randomUUID()}:`;
    const store = await RedisStore.open(target, prefix, { waitReplicas: 1, waitTimeoutMs: 2000 });
    const dict = new RedisDictionary({ target, keyPrefix: prefix, log: silentLogger, timeoutMs: 200 });
    try {
      expect(await dict.ready(5000)).toBe(true);
      await dict.set('nemu_label_team', 'payments');
      const acknowledged: string[] = [];
      for (let i = 0; i < 20; i++) {
        await store.put(`mutations/${String(i).padStart(4, '0')}`, { i });
        acknowledged.push(`mutations/${String(i).padStart(4, '0')}`);
      }
      const old = await group.masterPort();
      await group.kill(old);
      // Writes fail at once while there is no master (no offline queue), then succeed on the new one.
      await until(
        'a store write to succeed on the new master',
        () =>
          store.put('probe', { ok: true }).then(
            () => true,
            () => false,
          ),
        20_000,
        100,
      );
      expect(await group.masterPort()).not.toBe(old);
      expect((await store.list<{ i: number }>('mutations/')).map((e) => e.key)).toEqual(acknowledged);
      await until(
        'a dictionary lookup to succeed on the new master',
        () =>
          dict.lookup(['nemu_label_team']).then(
            (m) => m.get('nemu_label_team') === 'payments',
            () => false,
          ),
        20_000,
        100,
      );
    } finally {
      await dict.close();
      await store.close();
    }
  }, 60_000);
});

/** Ports of the data nodes that are replicas now. */
async function replicaPorts(): Promise<number[]> {
  const out: number[] = [];
  for (const n of group.nodes) {
    if (!n.service.running) continue;
    const info = await command(n.port, ['INFO', 'replication']).catch(() => '');
    if (String(info).includes('role:slave')) out.push(n.port);
  }
  return out;
}
