// Which Redis the configuration names, and the combinations it refuses, each with a message
// that names the keys to fix.
import { describe, expect, it } from 'vitest';

import { loadConfig } from '#common/config.js';
import type { NemuError } from '#common/errors.js';
import { testControllerConfig } from '#test/harness/controller.js';

import { controllerSchema } from '../config.ts';
import { describeTarget, redisTargetOf } from './target.ts';

function refused(overrides: Record<string, unknown>): NemuError {
  try {
    redisTargetOf(testControllerConfig(overrides));
  } catch (e) {
    return e as NemuError;
  }
  throw new Error(`accepted ${JSON.stringify(overrides)}`);
}

describe('the Redis a configuration names', () => {
  it('is none by default, one server with redisUrl, and a Sentinel master with redisSentinels + redisMasterName', () => {
    expect(redisTargetOf(testControllerConfig())).toBeUndefined();
    expect(redisTargetOf(testControllerConfig({ redisUrl: 'redis://r:6379/0' }))).toEqual({ kind: 'single', url: 'redis://r:6379/0' });
    expect(
      redisTargetOf(
        testControllerConfig({ redisSentinels: 's0:26380, s1 ,[fd00::1]:26381', redisMasterName: 'main', redisPassword: 'pw', redisSentinelPassword: 'spw' }),
      ),
    ).toEqual({
      kind: 'sentinel',
      sentinels: [
        { host: 's0', port: 26380 },
        { host: 's1', port: 26379 },
        { host: 'fd00::1', port: 26381 },
      ],
      masterName: 'main',
      password: 'pw',
      sentinelPassword: 'spw',
    });
  });

  it('refuses redisUrl together with redisSentinels', () => {
    const e = refused({ redisUrl: 'redis://r:6379', redisSentinels: 's0:26379', redisMasterName: 'main' });
    expect(e.code).toBe('NEMU_ERR_CONFIG');
    expect(e.message).toContain('redisUrl and redisSentinels are both set');
  });

  it('refuses sentinels without a master name, and a master name without sentinels', () => {
    const a = refused({ redisSentinels: 's0:26379' });
    expect(a.code).toBe('NEMU_ERR_CONFIG');
    expect(a.message).toContain('redisSentinels is set but redisMasterName is empty');
    const b = refused({ redisMasterName: 'main' });
    expect(b.code).toBe('NEMU_ERR_CONFIG');
    expect(b.message).toContain('redisMasterName is set but redisSentinels is empty');
  });

  it('refuses passwords for a Redis it does not use, or given twice', () => {
    expect(refused({ redisSentinelPassword: 'x', redisUrl: 'redis://r:6379' }).message).toContain('redisSentinelPassword is set but redisSentinels is empty');
    expect(refused({ redisPassword: 'x' }).message).toContain('redisPassword is set but neither redisUrl nor redisSentinels is');
    const twice = refused({ redisPassword: 'x', redisUrl: 'redis://:y@r:6379' });
    expect(twice.code).toBe('NEMU_ERR_CONFIG');
    expect(twice.message).toContain('redisPassword is set and redisUrl holds a password too');
    expect(twice.message).not.toContain('y@');
  });

  it('refuses a sentinel list that is not host:port pairs, naming the key', () => {
    let caught: NemuError | undefined;
    try {
      loadConfig(controllerSchema, { program: 'test', argv: ['--redis-sentinels', 's0:26379;s1', '--redis-master-name', 'main'], env: {} });
    } catch (e) {
      caught = e as NemuError;
    }
    expect(caught?.code).toBe('NEMU_ERR_CONFIG');
    expect(caught?.message).toContain('redisSentinels');
    const port = refused({ redisSentinels: 's0:70000', redisMasterName: 'main' });
    expect(port.code).toBe('NEMU_ERR_CONFIG');
    expect(port.message).toContain('redisSentinels: "s0:70000" is not host:port');
  });

  it('is described without its passwords', () => {
    expect(describeTarget({ kind: 'single', url: 'redis://:hunter2@r:6379/0', password: 'x' })).toBe('redis://:***@r:6379/0');
    const s = describeTarget({
      kind: 'sentinel',
      sentinels: [
        { host: 's0', port: 26379 },
        { host: '::1', port: 1 },
      ],
      masterName: 'main',
      password: 'hunter2',
      sentinelPassword: 'hunter3',
    });
    expect(s).toBe('master "main" via sentinels s0:26379,[::1]:1');
  });
});
