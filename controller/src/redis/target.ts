/**
 * Where the controller's Redis is, and how its clients (dictionary, store, their subscribers)
 * connect to it: one Redis at `redisUrl`, or a master that Redis Sentinel watches
 * (`redisSentinels` + `redisMasterName`), whose address the clients ask the sentinels for and
 * follow across failovers.
 *
 * The configuration's combinations are checked here, once, with messages that name the keys.
 */
import { Redis, type RedisOptions } from 'ioredis';
import { ErrorCodes, NemuError } from '../../../common/src/errors.ts';
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
      throw configError(`redisSentinels: "${item}" is not host:port; list the sentinels as host:port, comma-separated, e.g. redis-sentinel-0.redis:26379,redis-sentinel-1.redis:26379`);
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
    throw configError('redisUrl and redisSentinels are both set: use redisUrl for a single Redis, or redisSentinels with redisMasterName for Redis Sentinel, not both');
  }
  if (sentinels.length > 0 && config.redisMasterName === '') {
    throw configError('redisSentinels is set but redisMasterName is empty: set redisMasterName to the name the sentinels monitor the master under (the <name> of `sentinel monitor <name> <ip> <port> <quorum>`)');
  }
  if (sentinels.length === 0 && config.redisMasterName !== '') {
    throw configError('redisMasterName is set but redisSentinels is empty: list the sentinels in redisSentinels (host:port, comma-separated), or unset redisMasterName and use redisUrl for a single Redis');
  }
  if (sentinels.length === 0 && config.redisSentinelPassword !== '') {
    throw configError('redisSentinelPassword is set but redisSentinels is empty: it is the password of the sentinels; set redisSentinels and redisMasterName, or unset it');
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
    if (config.redisPassword !== '') throw configError('redisPassword is set but neither redisUrl nor redisSentinels is: it is the password of a Redis the controller does not use; set one of them, or unset redisPassword');
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
 * for Sentinel the connection policy is added:
 * - `sentinelRetryStrategy`: when no sentinel answers at all, ask again every ≤ 1 s rather
 *   than give up (ioredis' default is the same shape; stated here so it is a choice).
 * - `sentinelCommandTimeout`: a sentinel that accepts the connection but does not answer is
 *   skipped after 500 ms instead of stalling the reconnect.
 * - `failoverDetector`: each client also subscribes to the sentinels' `+switch-master` and
 *   drops its connection when the master changes, so a client still connected to a demoted
 *   master (a partition, not a crash) moves at once instead of writing into a replica.
 *   ioredis also checks the role of every node it connects to (INFO) and moves on from a
 *   node that is not the master.
 */
export function connectRedis(target: RedisTarget | string, options: RedisOptions): Redis {
  const retryStrategy = options.retryStrategy ?? reconnectDelay;
  if (typeof target === 'string') return new Redis(target, { ...options, retryStrategy });
  if (target.kind === 'single') return new Redis(target.url, { ...options, retryStrategy, ...(target.password ? { password: target.password } : {}) });
  return new Redis({
    ...options,
    retryStrategy,
    sentinels: target.sentinels,
    name: target.masterName,
    ...(target.password ? { password: target.password } : {}),
    ...(target.sentinelPassword ? { sentinelPassword: target.sentinelPassword } : {}),
    sentinelRetryStrategy: (times: number) => Math.min(times * 100, 1000),
    sentinelCommandTimeout: 500,
    failoverDetector: true,
  });
}
