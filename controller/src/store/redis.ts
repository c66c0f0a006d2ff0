/**
 * The store on Redis, for controllers with more than one replica: every replica sees the
 * same mutation log, skip rules and profiles. Values are JSON strings under
 * `<prefix>kv:<key>`; one sorted set (all scores 0) indexes the keys so that prefix listings
 * come back in key order with ZRANGEBYLEX, as they do from the embedded store.
 */
import { Redis } from 'ioredis';
import { ErrorCodes, NemuError } from '../../../common/src/errors.ts';
import type { ListOptions, Store, StoreEntry, StoreOp } from './store.ts';

export class RedisStore implements Store {
  readonly shared = true;
  private readonly index: string;

  private constructor(private readonly redis: Redis, private readonly prefix: string, private readonly url: string) {
    this.index = `${prefix}index`;
  }

  /** Connects (and checks the connection) before the controller starts serving. */
  static async open(url: string, prefix = 'nemutator:store:', timeoutMs = 2000): Promise<RedisStore> {
    const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 2, connectTimeout: timeoutMs, commandTimeout: timeoutMs, enableOfflineQueue: true });
    redis.on('error', () => undefined); // reported through the failing command
    try {
      await redis.connect();
      await redis.ping();
    } catch (e) {
      redis.disconnect();
      throw new NemuError(ErrorCodes.STORE, `cannot reach the store in Redis at ${safeUrl(url)}: ${(e as Error).message}; check redisUrl, or use --store embedded for one replica`, { cause: e });
    }
    return new RedisStore(redis, prefix, url);
  }

  private k(key: string): string {
    return `${this.prefix}kv:${key}`;
  }

  private fail(what: string, e: unknown): NemuError {
    return new NemuError(ErrorCodes.STORE, `store in Redis at ${safeUrl(this.url)}: ${what} failed: ${(e as Error).message}`, { status: 503, cause: e });
  }

  async get<T>(key: string): Promise<T | undefined> {
    let v: string | null;
    try {
      v = await this.redis.get(this.k(key));
    } catch (e) {
      throw this.fail(`reading ${key}`, e);
    }
    return v === null ? undefined : (JSON.parse(v) as T);
  }

  async put(key: string, value: unknown): Promise<void> {
    await this.batch([{ type: 'put', key, value }]);
  }

  async del(key: string): Promise<void> {
    await this.batch([{ type: 'del', key }]);
  }

  async batch(ops: StoreOp[]): Promise<void> {
    if (ops.length === 0) return;
    const m = this.redis.multi();
    for (const op of ops) {
      if (op.type === 'put') m.set(this.k(op.key), JSON.stringify(op.value)).zadd(this.index, 0, op.key);
      else m.del(this.k(op.key)).zrem(this.index, op.key);
    }
    let res: Array<[Error | null, unknown]> | null;
    try {
      res = await m.exec();
    } catch (e) {
      throw this.fail('a write', e);
    }
    const err = res?.find(([e]) => e)?.[0];
    if (!res || err) throw this.fail('a write', err ?? new Error('transaction aborted'));
  }

  async list<T>(prefix: string, opts: ListOptions = {}): Promise<Array<StoreEntry<T>>> {
    // Lexicographic bounds: [prefix … prefix\xff], narrowed by `after` (exclusive).
    const low = opts.after !== undefined && !opts.reverse ? `(${opts.after}` : `[${prefix}`;
    const high = opts.after !== undefined && opts.reverse ? `(${opts.after}` : `[${prefix}\xff`;
    const limit = opts.limit !== undefined && opts.limit >= 0 ? ['LIMIT', 0, opts.limit] : [];
    let keys: string[];
    try {
      keys = opts.reverse
        ? await (this.redis.zrevrangebylex as (...a: unknown[]) => Promise<string[]>).call(this.redis, this.index, high, low, ...limit)
        : await (this.redis.zrangebylex as (...a: unknown[]) => Promise<string[]>).call(this.redis, this.index, low, high, ...limit);
    } catch (e) {
      throw this.fail(`listing ${prefix}`, e);
    }
    if (keys.length === 0) return [];
    let values: Array<string | null>;
    try {
      values = await this.redis.mget(keys.map((key) => this.k(key)));
    } catch (e) {
      throw this.fail(`listing ${prefix}`, e);
    }
    const out: Array<StoreEntry<T>> = [];
    keys.forEach((key, i) => {
      const v = values[i];
      if (v !== null && v !== undefined) out.push({ key, value: JSON.parse(v) as T });
    });
    return out;
  }

  async close(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}

/** A Redis URL without its password, for messages. */
function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '<redis url>';
  }
}
