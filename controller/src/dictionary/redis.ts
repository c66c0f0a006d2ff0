/**
 * The dictionary in Redis (production). Every key a review needs is fetched with one MGET,
 * bounded by `timeoutMs`: no offline queue, no retries, so a Redis that is down or slow
 * costs a review at most that long and the object is admitted unchanged.
 *
 * Values (and absences) are cached in process for `cacheTtlMs`. Changes made through
 * nemutator are published on `<prefix>nemutator:dictionary` and drop the cached key in every
 * replica at once; the cache is only used while that subscription is live, so a replica
 * that might have missed an invalidation asks Redis instead.
 *
 * Redis is one server or a Sentinel-managed master (../redis/target.ts). During a failover
 * both connections drop; lookups fail at once (no offline queue) and the cache is off until
 * the subscriber is back on the new master, so no review is held and none reads a value the
 * failover may have changed.
 */
import type { Redis } from 'ioredis';

import { ErrorCodes, NemuError } from '#common/errors.js';
import type { Logger } from '#common/log.js';

import type { ControllerMetrics } from '../metrics.ts';
import { connectRedis, describeTarget, type RedisTarget, targetKeys } from '../redis/target.ts';
import type { Dictionary, DictionaryEntry } from './dictionary.ts';

export interface RedisDictionaryOptions {
  /** A redis:// URL, or where the master is (Sentinel). */
  target: RedisTarget | string;
  keyPrefix?: string;
  timeoutMs?: number;
  cacheTtlMs?: number;
  log: Logger;
  metrics?: Pick<ControllerMetrics, 'dictionaryRoundTrips' | 'dictionarySeconds'>;
}

interface Cached {
  value: string | null;
  expires: number;
}

export class RedisDictionary implements Dictionary {
  readonly backend = 'redis' as const;
  private readonly client: Redis;
  private readonly sub: Redis;
  private readonly prefix: string;
  private readonly channel: string;
  private readonly timeoutMs: number;
  private readonly ttl: number;
  private readonly cache = new Map<string, Cached>();
  private cacheLive = false;
  /** Where Redis is, without a password. */
  readonly where: string;
  private lastError = '';
  private closed = false;

  constructor(private readonly opts: RedisDictionaryOptions) {
    this.where = whereOf(opts.target);
    this.prefix = opts.keyPrefix ?? '';
    this.channel = `${this.prefix}nemutator:dictionary`;
    this.timeoutMs = opts.timeoutMs ?? 200;
    this.ttl = opts.cacheTtlMs ?? 5000;
    // Reconnecting: quickly, then every ≤ 500 ms (redis/target.ts reconnectDelay), so after a
    // failover the dictionary is back within half a second of the sentinels naming the new
    // master. Lookups never queue (enableOfflineQueue false) nor retry (maxRetriesPerRequest 0):
    // while the connection is down each fails at once and the review admits unchanged.
    const common = {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      connectTimeout: Math.max(this.timeoutMs, 1000),
      lazyConnect: false,
    };
    this.client = connectRedis(opts.target, { ...common, commandTimeout: this.timeoutMs });
    this.sub = connectRedis(opts.target, { ...common, enableOfflineQueue: true });
    let warned = false;
    this.client.on('error', (e: NodeJS.ErrnoException) => {
      this.lastError = e.code ?? e.message;
      if (!warned) opts.log.warn({ redis: this.where, error: this.lastError }, 'dictionary: redis unreachable; reviews admit unchanged until it returns');
      warned = true;
    });
    this.client.on('ready', () => {
      if (warned) opts.log.info({ redis: this.where }, 'dictionary: redis reachable again');
      warned = false;
      this.lastError = '';
    });
    this.sub.on('error', () => this.dropCache());
    this.sub.on('close', () => this.dropCache());
    this.sub.on('ready', () => {
      this.sub.subscribe(this.channel).then(
        () => {
          this.cache.clear();
          this.cacheLive = true;
        },
        () => this.dropCache(),
      );
    });
    this.sub.on('message', (_channel: string, key: string) => this.cache.delete(key));
  }

  private dropCache(): void {
    this.cacheLive = false;
    this.cache.clear();
  }

  /** Waits (bounded) for the first connection, so a fresh controller does not start degraded. */
  async ready(waitMs = 2000): Promise<boolean> {
    if (this.client.status === 'ready') return true;
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(false), waitMs);
      t.unref();
      this.client.once('ready', () => {
        clearTimeout(t);
        resolve(true);
      });
    });
  }

  private unreachable(e: unknown): NemuError {
    const msg = (e as Error).message ?? String(e);
    const why = /timed out/i.test(msg)
      ? `did not answer within ${this.timeoutMs} ms`
      : this.lastError
        ? `is not reachable (${this.lastError})`
        : `is not reachable (${msg})`;
    return new NemuError(ErrorCodes.DICT_UNREACHABLE, `redis at ${this.where} ${why}; check ${targetKeys(this.opts.target)} and that Redis is running`, {
      status: 503,
      cause: e,
    });
  }

  private async roundTrip<T>(run: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      const r = await run();
      this.opts.metrics?.dictionaryRoundTrips.inc({ backend: 'redis', result: 'ok' });
      this.opts.metrics?.dictionarySeconds.observe({ backend: 'redis' }, (performance.now() - started) / 1000);
      return r;
    } catch (e) {
      this.opts.metrics?.dictionaryRoundTrips.inc({ backend: 'redis', result: 'error' });
      throw this.unreachable(e);
    }
  }

  async lookup(keys: readonly string[]): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    const now = Date.now();
    const missing: string[] = [];
    for (const k of keys) {
      const c = this.cacheLive ? this.cache.get(k) : undefined;
      if (c && c.expires > now) {
        if (c.value !== null) out.set(k, c.value);
      } else {
        missing.push(k);
      }
    }
    if (missing.length === 0) return out;
    const live = this.cacheLive;
    const values = await this.roundTrip(() => this.client.mget(missing.map((k) => this.prefix + k)));
    const expires = Date.now() + this.ttl;
    missing.forEach((k, i) => {
      const v = values[i] ?? null;
      if (v !== null) out.set(k, v);
      // a subscription that dropped during the round trip may have missed an invalidation
      if (live && this.cacheLive && this.ttl > 0) this.cache.set(k, { value: v, expires });
    });
    return out;
  }

  async get(key: string): Promise<string | undefined> {
    const v = await this.roundTrip(() => this.client.get(this.prefix + key));
    return v ?? undefined;
  }

  async set(key: string, value: string): Promise<void> {
    await this.roundTrip(() =>
      this.client
        .multi()
        .set(this.prefix + key, value)
        .publish(this.channel, key)
        .exec(),
    );
    this.cache.delete(key);
  }

  async del(key: string): Promise<boolean> {
    const r = await this.roundTrip(() =>
      this.client
        .multi()
        .del(this.prefix + key)
        .publish(this.channel, key)
        .exec(),
    );
    this.cache.delete(key);
    return Number(r?.[0]?.[1] ?? 0) > 0;
  }

  async list(opts: { prefix?: string; limit?: number } = {}): Promise<DictionaryEntry[]> {
    const limit = opts.limit ?? 10_000;
    const pattern = (this.prefix + (opts.prefix ?? '')).replace(/[*?[\]\\]/g, '\\$&') + '*';
    const keys = new Set<string>();
    let cursor = '0';
    do {
      const [next, batch] = await this.roundTrip(() => this.client.scan(cursor, 'MATCH', pattern, 'COUNT', 1000));
      cursor = next;
      for (const k of batch) keys.add(k.slice(this.prefix.length));
    } while (cursor !== '0' && keys.size < limit * 2);
    const sorted = [...keys]
      .filter((k) => k !== 'nemutator:dictionary')
      .sort()
      .slice(0, limit);
    if (sorted.length === 0) return [];
    const values = await this.roundTrip(() => this.client.mget(sorted.map((k) => this.prefix + k)));
    return sorted.flatMap((key, i) => (typeof values[i] === 'string' ? [{ key, value: values[i] }] : []));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.dropCache();
    this.client.disconnect();
    this.sub.disconnect();
  }
}

/** host:port of a single Redis (the URL may hold a password), or the Sentinel master's name and sentinels. */
function whereOf(target: RedisTarget | string): string {
  if (typeof target !== 'string' && target.kind === 'sentinel') return describeTarget(target);
  const u = new URL(typeof target === 'string' ? target : target.url);
  return `${u.hostname}:${u.port || 6379}`;
}
