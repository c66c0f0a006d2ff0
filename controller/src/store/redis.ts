/**
 * The store on Redis, for controllers with more than one replica: every replica sees the
 * same mutation log, skip rules and profiles. Values are JSON strings under
 * `<prefix>kv:<key>`; one sorted set (all scores 0) indexes the keys so that prefix listings
 * come back in key order with ZRANGEBYLEX, as they do from the embedded store.
 *
 * Every write batch also publishes the keys it touched, one message per collection on
 * `<prefix>changes:<collection>`, inside the same transaction; `watch` subscribes to them on a
 * second connection, so a replica can keep a small collection in memory and still see what
 * the others write.
 */
import { Redis } from 'ioredis';
import { ErrorCodes, NemuError } from '../../../common/src/errors.ts';
import type { ListOptions, Store, StoreEntry, StoreOp, StoreWatcher } from './store.ts';

/** The collection a key belongs to: its first path segment (`skip-rules/` of `skip-rules/a/b`). */
function collection(key: string): string {
  const slash = key.indexOf('/');
  return slash === -1 ? key : key.slice(0, slash + 1);
}

export class RedisStore implements Store {
  readonly shared = true;
  private readonly index: string;
  private sub: Redis | undefined;
  private subReady = false;
  private readonly watchers = new Map<string, Set<{ prefix: string; watcher: StoreWatcher }>>();

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
    // a refused MULTI says only EXECABORT; the command's own error says why (NOREPLICAS, OOM)
    const why = (e as { previousErrors?: Error[] }).previousErrors?.[0]?.message ?? (e as Error).message;
    return new NemuError(ErrorCodes.STORE, `store in Redis at ${safeUrl(this.url)}: ${what} failed: ${why}`, { status: 503, cause: e });
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
    // Runs of puts and of deletes become one MSET + one ZADD (DEL + ZREM) each: a batch of a
    // hundred mutation-log entries is a handful of commands, not two hundred.
    const m = this.redis.multi();
    const touched = new Map<string, string[]>();
    for (let i = 0; i < ops.length; ) {
      const type = ops[i]!.type;
      let j = i;
      while (j < ops.length && ops[j]!.type === type) j++;
      const run = ops.slice(i, j);
      if (type === 'put') {
        m.mset(run.flatMap((op) => [this.k(op.key), (op as { json?: string }).json ?? JSON.stringify((op as { value: unknown }).value)]));
        m.zadd(this.index, ...run.flatMap((op) => [0, op.key]));
      } else {
        m.del(run.map((op) => this.k(op.key)));
        m.zrem(this.index, ...run.map((op) => op.key));
      }
      for (const op of run) {
        const c = collection(op.key);
        const keys = touched.get(c);
        if (keys) keys.push(op.key);
        else touched.set(c, [op.key]);
      }
      i = j;
    }
    for (const [c, keys] of touched) m.publish(this.channel(c), JSON.stringify(keys));
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

  private channel(c: string): string {
    return `${this.prefix}changes:${c}`;
  }

  watch(prefix: string, watcher: StoreWatcher): () => void {
    const channel = this.channel(collection(prefix));
    const entry = { prefix, watcher };
    let set = this.watchers.get(channel);
    if (!set) this.watchers.set(channel, (set = new Set()));
    set.add(entry);
    const sub = this.subscriber();
    if (this.subReady) {
      sub.subscribe(channel).then(
        () => this.subReady && set.has(entry) && watcher.live(true),
        () => watcher.live(false),
      );
    }
    return () => {
      set.delete(entry);
      watcher.live(false);
    };
  }

  /** The subscriber connection, opened with the first watch; notices stop (live false) while it is down. */
  private subscriber(): Redis {
    if (this.sub) return this.sub;
    const sub = (this.sub = new Redis(this.url, { maxRetriesPerRequest: null, enableOfflineQueue: true, retryStrategy: (times: number) => Math.min(times * 100, 1000) }));
    const all = () => [...this.watchers.values()].flatMap((s) => [...s]);
    const down = () => {
      if (!this.subReady) return;
      this.subReady = false;
      for (const { watcher } of all()) watcher.live(false);
    };
    sub.on('error', down);
    sub.on('close', down);
    sub.on('ready', () => {
      sub.subscribe(...this.watchers.keys()).then(
        () => {
          this.subReady = true;
          for (const { watcher } of all()) watcher.live(true);
        },
        down,
      );
    });
    sub.on('message', (channel: string, message: string) => {
      let keys: unknown;
      try {
        keys = JSON.parse(message);
      } catch {
        return;
      }
      if (!Array.isArray(keys)) return;
      for (const { prefix, watcher } of this.watchers.get(channel) ?? []) {
        const mine = keys.filter((k): k is string => typeof k === 'string' && k.startsWith(prefix));
        if (mine.length > 0) watcher.changed(mine);
      }
    });
    return sub;
  }

  async close(): Promise<void> {
    if (this.sub) {
      this.subReady = false;
      await this.sub.quit().catch(() => this.sub?.disconnect());
    }
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
