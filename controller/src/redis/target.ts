/**
 * Where the controller's Redis is, and how its clients (dictionary, store, their subscribers)
 * connect to it: one Redis at `redisUrl`, or a master that Redis Sentinel watches
 * (`redisSentinels` + `redisMasterName`), whose address the clients ask the sentinels for and
 * follow across failovers.
 *
 * The configuration's combinations are checked here, once, with messages that name the keys.
 */
import { Redis, type RedisOptions } from 'ioredis';

import { ErrorCodes, NemuError } from '#common/errors.js';

import type { ControllerConfig } from '../config.ts';

export interface SentinelAddress {
  host: string;
  port: number;
}

export type RedisTarget =
  | { kind: 'single'; url: string; password?: string }
  | { kind: 'sentinel'; sentinels: SentinelAddress[]; masterName: string; password?: string; sentinelPassword?: string };

export type RedisConfig = Pick<ControllerConfig, 'redisUrl' | 'redisSentinels' | 'redisMasterName' | 'redisPassword' | 'redisSentinelPassword'>;

const DEFAULT_SENTINEL_PORT = 26379;

function configError(message: string): NemuError {
  return new NemuError(ErrorCodes.CONFIG, message);
}

/** `a:26379, [::1]:26380, b` → addresses (26379 where no port is given). */
export function parseSentinels(text: string): SentinelAddress[] {
  const out: SentinelAddress[] = [];
  for (const raw of text.split(',')) {
    const item = raw.trim();
    if (item === '') continue;
    const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9._-]+))(?::(\d+))?$/.exec(item);
    const port = m?.[3] === undefined ? DEFAULT_SENTINEL_PORT : Number(m[3]);
    if (!m || !Number.isInteger(port) || port < 1 || port > 65535) {
      throw configError(
        `redisSentinels: "${item}" is not host:port; list the sentinels as host:port, comma-separated, e.g. redis-sentinel-0.redis:26379,redis-sentinel-1.redis:26379`,
      );
    }
    out.push({ host: m[1] ?? m[2]!, port });
  }
  return out;
}

/**
 * The Redis the configuration names, or undefined when it names none (embedded store and
 * dictionary). Throws NEMU_ERR_CONFIG for combinations that cannot be meant.
 */
export function redisTargetOf(config: RedisConfig): RedisTarget | undefined {
  const sentinels = parseSentinels(config.redisSentinels);
  if (config.redisUrl !== '' && sentinels.length > 0) {
    throw configError(
      'redisUrl and redisSentinels are both set: use redisUrl for a single Redis, or redisSentinels with redisMasterName for Redis Sentinel, not both',
    );
  }
  if (sentinels.length > 0 && config.redisMasterName === '') {
    throw configError(
      'redisSentinels is set but redisMasterName is empty: set redisMasterName to the name the sentinels monitor the master under (the <name> of `sentinel monitor <name> <ip> <port> <quorum>`)',
    );
  }
  if (sentinels.length === 0 && config.redisMasterName !== '') {
    throw configError(
      'redisMasterName is set but redisSentinels is empty: list the sentinels in redisSentinels (host:port, comma-separated), or unset redisMasterName and use redisUrl for a single Redis',
    );
  }
  if (sentinels.length === 0 && config.redisSentinelPassword !== '') {
    throw configError(
      'redisSentinelPassword is set but redisSentinels is empty: it is the password of the sentinels; set redisSentinels and redisMasterName, or unset it',
    );
  }
  const password = config.redisPassword === '' ? {} : { password: config.redisPassword };
  if (sentinels.length > 0) {
    return {
      kind: 'sentinel',
      sentinels,
      masterName: config.redisMasterName,
      ...password,
      ...(config.redisSentinelPassword === '' ? {} : { sentinelPassword: config.redisSentinelPassword }),
    };
  }
  if (config.redisUrl === '') {
    if (config.redisPassword !== '')
      throw configError(
        'redisPassword is set but neither redisUrl nor redisSentinels is: it is the password of a Redis the controller does not use; set one of them, or unset redisPassword',
      );
    return undefined;
  }
  if (config.redisPassword !== '' && new URL(config.redisUrl).password !== '') {
    throw configError('redisPassword is set and redisUrl holds a password too: give the password in one of them');
  }
  return { kind: 'single', url: config.redisUrl, ...password };
}

/** Where a target is, for messages and logs: never a password. */
export function describeTarget(target: RedisTarget | string): string {
  const t = typeof target === 'string' ? ({ kind: 'single', url: target } as const) : target;
  if (t.kind === 'sentinel') return `master "${t.masterName}" via sentinels ${t.sentinels.map(showAddress).join(',')}`;
  try {
    const u = new URL(t.url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '<redis url>';
  }
}

function showAddress(a: SentinelAddress): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

/** The keys to check when a target cannot be reached, for error messages. */
export function targetKeys(target: RedisTarget | string): string {
  return typeof target !== 'string' && target.kind === 'sentinel'
    ? 'redisSentinels and redisMasterName (NEMUTATOR_REDIS_SENTINELS, NEMUTATOR_REDIS_MASTER_NAME), and that the sentinels know a master'
    : 'redisUrl (NEMUTATOR_REDIS_URL)';
}

/**
 * Reconnecting after a lost connection: quickly, then at most every 500 ms. During a Sentinel
 * failover each attempt asks the sentinels for the master again, and they keep naming the dead
 * one until a replica is promoted (down-after-milliseconds + election + promotion); a short
 * cap means a client finds the new master at most half a second after the sentinels do.
 * A refused connection on the review path costs nothing (reviews never wait on it: see
 * enableOfflineQueue in each client), so frequent attempts are cheap.
 */
export function reconnectDelay(times: number): number {
  return Math.min(times * 50, 500);
}

/**
 * A client for the target. `options` are the caller's choices (timeouts, offline queue);
 * the connection policy is added:
 * - `retryStrategy` (unless the caller chose one): reconnectDelay.
 * - `reconnectOnError`: a write answered READONLY means this node is no longer the master
 *   (demoted after a failover while the connection stayed up): reconnect, which for Sentinel
 *   asks the sentinels for the master again. The command itself fails (no resend): the
 *   caller decides, and the mutation log admits unmutated.
 * For Sentinel:
 * - `sentinelRetryStrategy`: when no sentinel answers at all, ask again every ≤ 1 s rather
 *   than give up (ioredis' default has the same shape; stated here so it is a choice).
 * - `sentinelCommandTimeout`: a sentinel that accepts the connection but does not answer is
 *   skipped after 500 ms instead of stalling the reconnect.
 * - no `failoverDetector`: it subscribes to +switch-master on every sentinel and drops the
 *   connection when any of them announces the switch, which it does after the clients have
 *   usually already found the new master (their connection to the dead one dropped at once):
 *   measured here, a second drop half a second after recovery, failing the writes in between.
 *   A crashed master drops the connections by itself; a demoted one is told by Sentinel to
 *   kill its normal clients (CLIENT KILL TYPE normal during reconfiguration), and READONLY
 *   covers the rest. A master cut off from the sentinels but not from us cannot get WAIT
 *   acknowledgements from the replicas, so with redisWaitReplicas its writes fail.
 * ioredis checks the role of every node it connects to (INFO) and moves on from one that is
 * not the master.
 */
export function connectRedis(target: RedisTarget | string, options: RedisOptions): Redis {
  const policy: RedisOptions = {
    retryStrategy: reconnectDelay,
    reconnectOnError: (err: Error) => err.message.startsWith('READONLY'),
    ...options,
  };
  if (typeof target === 'string') return new Redis(target, policy);
  if (target.kind === 'single') return new Redis(target.url, { ...policy, ...(target.password ? { password: target.password } : {}) });
  return new Redis({
    ...policy,
    sentinels: target.sentinels,
    name: target.masterName,
    ...(target.password ? { password: target.password } : {}),
    ...(target.sentinelPassword ? { sentinelPassword: target.sentinelPassword } : {}),
    sentinelRetryStrategy: (times: number) => Math.min(times * 100, 1000),
    sentinelCommandTimeout: 500,
    failoverDetector: false,
  });
}
