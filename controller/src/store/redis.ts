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
 *
 * Redis is one server (`redisUrl`) or a master found through Redis Sentinel (`redisSentinels`,
 * `redisMasterName`): see ../redis/target.ts. With Sentinel, a write the master acknowledged
 * can still be lost when the master dies before a replica copied it (replication is
 * asynchronous); `waitReplicas` closes that window: each batch is followed by
 * `WAIT <waitReplicas> <waitTimeoutMs>` and counts as written only when that many replicas
 * have it (the replica with the most data is the one Sentinel promotes).
 */
import type { Redis } from 'ioredis';

import { ErrorCodes, NemuError } from '#common/errors.js';

import { connectRedis, describeTarget, type RedisTarget, targetKeys } from '../redis/target.ts';
import type { ListOptions, Store, StoreEntry, StoreOp, StoreWatcher } from './store.ts';

export interface RedisStoreOptions {
  /** Connecting, and each command (default 2000 ms). */
  timeoutMs?: number;
  /** Replicas that must acknowledge a batch (Redis WAIT); 0 = do not wait (default). */
  waitReplicas?: number;
  /** How long a batch waits for them (default 100 ms). */
  waitTimeoutMs?: number;
}

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

  private readonly where: string;

  private constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly target: RedisTarget | string,
    private readonly waitReplicas: number,
    private readonly waitTimeoutMs: number,
  ) {
    this.index = `${prefix}index`;
    this.where = describeTarget(target);
  }

  /** Connects (and checks the connection) before the controller starts serving. */
  static async open(target: RedisTarget | string, prefix = 'nemutator:store:', opts: RedisStoreOptions = {}): Promise<RedisStore> {
    const timeoutMs = opts.timeoutMs ?? 2000;
    const waitReplicas = opts.waitReplicas ?? 0;
    const waitTimeoutMs = opts.waitTimeoutMs ?? 100;
    // No offline queue: a command issued while the connection is down (Redis restarting, a
    // Sentinel failover in progress) fails at once instead of queueing without bound. The
    // mutation log then admits unmutated at once rather than holding reviews, and a write
    // reported as failed is never sent later behind the caller's back. Commands already sent
    // when the connection drops fail at once too (maxRetriesPerRequest 0: not resent after the
    // reconnect): whether a batch in flight reached the master is unknown, and the caller
    // treats it as not written; waiting for the reconnect would hold every review in the group
    // for the length of the failover (1.5 s measured with 2 retries). The command timeout
    // leaves WAIT its own timeout plus a margin.
    const redis = connectRedis(target, {
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      connectTimeout: timeoutMs,
      commandTimeout: Math.max(timeoutMs, waitTimeoutMs + 1000),
      enableOfflineQueue: false,
    });
    redis.on('error', () => undefined); // reported through the failing command
    let timer: NodeJS.Timeout | undefined;
    try {
      // Bounded as a whole: with Sentinel, connect() keeps asking the sentinels (every ≤ 1 s)
      // for as long as none answers; start-up should say so instead of hanging.
      await Promise.race([
        redis.connect().then(() => redis.ping()),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no connection within ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
    } catch (e) {
      redis.disconnect();
      throw new NemuError(
        ErrorCodes.STORE,
        `cannot reach the store in Redis at ${describeTarget(target)}: ${(e as Error).message}; check ${targetKeys(target)}, or use --store embedded for one replica`,
        { cause: e },
      );
    } finally {
      clearTimeout(timer);
    }
    return new RedisStore(redis, prefix, target, waitReplicas, waitTimeoutMs);
  }

  private k(key: string): string {
    return `${this.prefix}kv:${key}`;
  }

  private fail(what: string, e: unknown): NemuError {
    // a refused MULTI says only EXECABORT; the command's own error says why (NOREPLICAS, OOM)
    const why = (e as { previousErrors?: Error[] }).previousErrors?.[0]?.message ?? (e as Error).message;
    return new NemuError(ErrorCodes.STORE, `store in Redis at ${this.where}: ${what} failed: ${why}`, { status: 503, cause: e });
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
    for (let i = 0; i < ops.length;) {
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
    if (this.waitReplicas > 0) await this.replicated();
  }

  /**
   * WAIT for `waitReplicas` replicas to hold everything this connection wrote. The batch is
   * already on the master; when too few replicas acknowledge it in time it is reported as
   * failed anyway, because the caller must not promise it (a failover now could lose it).
   */
  private async replicated(): Promise<void> {
    let acked: number;
    try {
      acked = await this.redis.wait(this.waitReplicas, this.waitTimeoutMs);
    } catch (e) {
      throw this.fail('waiting for replicas (WAIT)', e);
    }
    if (acked < this.waitReplicas) {
      throw new NemuError(
        ErrorCodes.STORE,
        `store in Redis at ${this.where}: a write reached ${acked} of the ${this.waitReplicas} replica(s) redisWaitReplicas asks for within redisWaitTimeout (${this.waitTimeoutMs} ms), so it does not count as written; check the replicas (INFO replication on the master), or lower redisWaitReplicas`,
        { status: 503 },
      );
    }
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
    // The subscriber queues its SUBSCRIBE until it is connected: watchers are told (live false)
    // while it is down, and nothing else is sent on it.
    const sub = (this.sub = connectRedis(this.target, { maxRetriesPerRequest: null, enableOfflineQueue: true }));
    const all = () => [...this.watchers.values()].flatMap((s) => [...s]);
    const down = () => {
      if (!this.subReady) return;
      this.subReady = false;
      for (const { watcher } of all()) watcher.live(false);
    };
    sub.on('error', down);
    sub.on('close', down);
    sub.on('ready', () => {
      sub.subscribe(...this.watchers.keys()).then(() => {
        this.subReady = true;
        for (const { watcher } of all()) watcher.live(true);
      }, down);
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
