/**
 * The mutation log: every mutation that was answered with a patch, durable in the store
 * under `mutations/<id>` (time-ordered ids, so a reverse listing is newest first).
 *
 * Durable before answered: admission calls `commit` and answers only once it resolves, so an
 * id the apiserver saw is in the log whatever happens to this process next. Concurrent
 * commits share writes (group commit): a write starts as soon as one is waiting and none is
 * in progress; everything that arrives while it runs goes into the next one (at most
 * `GROUP_COMMIT_MAX` entries), so a burst of reviews costs one fsync (one Redis transaction)
 * per write, not one each, and an idle controller adds no wait at all.
 *
 * When a write fails the store is marked failing (`StoreHealth`: `/readyz`, status) and the
 * entries' reviews are told so; while failing, `commit` refuses at once (the object is
 * admitted unmutated) and a probe write every `probeEveryMs` finds out when writes work again.
 * A commit that waits longer than `timeoutMs` is refused too; its entry may still be written
 * later (an entry for a mutation that was never applied is harmless, the reverse would not be).
 */
import type { Operation } from 'fast-json-patch';

import { ErrorCodes, NemuError } from '#common/errors.js';
import type { Logger } from '#common/log.js';
import { messageOf, ThrottledLog } from '#common/throttled-log.js';

import { StoreHealth } from '../store/health.ts';
import type { Store } from '../store/store.ts';

export interface MutationEntry {
  id: string;
  reviewUid: string;
  kind: string;
  namespace: string;
  name?: string;
  generateName?: string;
  owner?: { kind: string; name: string };
  operation: 'CREATE' | 'UPDATE';
  verbs: string[];
  patch: Operation[];
  reversePatch: Operation[];
  user?: string;
  time: string;
  /** Set once the mutation was rolled back. */
  rolledBack?: { time: string; user?: string };
}

/** An entry without its patches: what `commit` takes, with the patches already serialized. */
export type MutationHead = Omit<MutationEntry, 'patch' | 'reversePatch'>;

export interface MutationFilter {
  namespace?: string;
  name?: string;
  kind?: string;
  limit?: number;
}

const PREFIX = 'mutations/';
/** Where the probe writes while the log is failing. */
const PROBE_KEY = 'health/mutation-log';
/** Entries written at once at most. */
export const GROUP_COMMIT_MAX = 256;

export interface MutationLogOptions {
  /** Shared with `/readyz` and the status route; default: the log's own. */
  health?: StoreHealth;
  /** Longest a commit waits for its write (`mutationLogTimeout`). Default 1 s. */
  timeoutMs?: number;
  /** How often a failing log tries a write. Default 500 ms. */
  probeEveryMs?: number;
  /** Called for every failed write (batch or probe): the metric. */
  onWriteFailure?: () => void;
}

/**
 * An entry waiting for its write: its key, its JSON and who waits for it. The entry object and
 * the patch operations (which share values with the reviewed object) are not held.
 */
interface Pending {
  key: string;
  json: string;
  /** Set when the waiter gave up before the write started: the entry is not written. */
  abandoned: boolean;
  done(err?: Error): void;
}

export class MutationLog {
  readonly health: StoreHealth;
  private queue: Pending[] = [];
  private writing: Promise<void> | undefined;
  private scheduled = false;
  private probe: NodeJS.Timeout | undefined;
  private probing = false;
  private readonly timeoutMs: number;
  private readonly probeEveryMs: number;
  private readonly hot: ThrottledLog;

  constructor(
    private readonly store: Store,
    private readonly log: Logger,
    private readonly opts: MutationLogOptions = {},
  ) {
    this.health = opts.health ?? new StoreHealth();
    this.timeoutMs = opts.timeoutMs ?? 1000;
    this.probeEveryMs = opts.probeEveryMs ?? 500;
    // while failing, probes fail every probeEveryMs: a reminder now and then is enough
    this.hot = new ThrottledLog(log, 30_000);
  }

  /**
   * Writes an entry whose patches the caller has already serialized (the admission answer
   * carries the forward patch as JSON anyway) and resolves once it is durable. Rejects with
   * NEMU_ERR_MUTATION_LOG when the store is failing, the write fails or takes over `timeoutMs`.
   */
  commit(head: MutationHead, patchJson: string, reversePatchJson: string): Promise<void> {
    if (this.health.failing) return Promise.reject(this.refusal(`the store is failing (${this.health.describe()})`));
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        pending.abandoned = true;
        reject(this.refusal(`the store did not confirm the write within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      const pending: Pending = {
        key: PREFIX + head.id,
        json: entryJson(head, patchJson, reversePatchJson),
        abandoned: false,
        done: (err) => {
          clearTimeout(timer);
          if (err) reject(err);
          else resolve();
        },
      };
      this.enqueue(pending);
    });
  }

  /**
   * Writes an entry for a change already made outside admission (the resize ladder), whatever
   * the store's health: resolves once written, or once the failure is logged.
   */
  append(entry: MutationEntry): Promise<void> {
    const { patch, reversePatch, ...head } = entry;
    return new Promise<void>((resolve) => {
      this.enqueue({
        key: PREFIX + head.id,
        json: entryJson(head, JSON.stringify(patch), JSON.stringify(reversePatch)),
        abandoned: false,
        done: (err) => {
          if (err) this.log.error({ id: head.id, error: err.message }, 'mutation log entry could not be written; this mutation cannot be rolled back');
          resolve();
        },
      });
    });
  }

  private enqueue(p: Pending): void {
    this.queue.push(p);
    if (this.scheduled || this.writing) return;
    // Reviews whose chains ran in the same turn of the event loop share the first write too.
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.next();
    });
  }

  /** Starts a write of what is queued, unless one is in progress (it starts the next when done). */
  private next(): void {
    if (this.writing) return;
    const batch = this.queue.splice(0, GROUP_COMMIT_MAX).filter((p) => !p.abandoned);
    if (this.queue.length === 0 && batch.length === 0) return;
    this.writing = this.write(batch).finally(() => {
      this.writing = undefined;
      if (this.queue.length > 0) this.next();
    });
  }

  private async write(batch: Pending[]): Promise<void> {
    if (batch.length === 0) return;
    try {
      // `json` is the value, serialized: the stores write it as it is.
      await this.store.batch(batch.map(({ key, json }) => ({ type: 'put' as const, key, value: undefined, json })));
    } catch (e) {
      this.failed(e);
      const err = this.refusal(`the store refused the write: ${messageOf(e)}`);
      for (const p of batch) p.done(err);
      return;
    }
    for (const p of batch) p.done();
  }

  private refusal(why: string): NemuError {
    return new NemuError(ErrorCodes.MUTATION_LOG, `the mutation log cannot be written: ${why}`, { status: 503 });
  }

  private failed(e: unknown): void {
    this.opts.onWriteFailure?.();
    if (this.health.failed(messageOf(e))) {
      this.hot.errorNow(
        'mutation-log-write',
        { error: messageOf(e) },
        'mutation log cannot be written: reviews are admitted unmutated until a probe write succeeds',
      );
      this.probe ??= setInterval(() => void this.probeOnce(), this.probeEveryMs);
      this.probe.unref();
    } else {
      this.hot.error('mutation-log-write', { error: messageOf(e) }, 'mutation log still cannot be written; reviews are admitted unmutated');
    }
  }

  /** One probe write; the log takes entries again once one succeeds. */
  private async probeOnce(): Promise<void> {
    if (this.probing) return;
    this.probing = true;
    try {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        this.store.batch([{ type: 'put', key: PROBE_KEY, value: { time: new Date().toISOString() } }]),
        new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${this.timeoutMs} ms`)), this.timeoutMs))),
      ]).finally(() => clearTimeout(timer));
      clearInterval(this.probe);
      this.probe = undefined;
      if (this.health.recovered()) this.log.info('mutation log writable again: reviews are mutated again');
    } catch (e) {
      this.failed(e);
    } finally {
      this.probing = false;
    }
  }

  /** Resolves when every entry queued so far has been written (or refused). */
  async flush(): Promise<void> {
    while (this.scheduled || this.writing || this.queue.length > 0) {
      if (!this.writing) this.next();
      if (this.writing) await this.writing;
      else await new Promise((r) => setImmediate(r));
    }
  }

  /** Stops probing (shutdown). */
  close(): void {
    clearInterval(this.probe);
    this.probe = undefined;
  }

  async get(id: string): Promise<MutationEntry | undefined> {
    return this.store.get<MutationEntry>(PREFIX + id);
  }

  async update(entry: MutationEntry): Promise<void> {
    await this.store.put(PREFIX + entry.id, entry);
  }

  /** Newest first, filtered. */
  async list(filter: MutationFilter = {}): Promise<MutationEntry[]> {
    const limit = Math.min(Math.max(filter.limit ?? 100, 1), 1000);
    const out: MutationEntry[] = [];
    let after: string | undefined;
    // Pages of the log, newest first, until `limit` entries match.
    for (;;) {
      const page = await this.store.list<MutationEntry>(PREFIX, after === undefined ? { reverse: true, limit: 500 } : { reverse: true, limit: 500, after });
      for (const { value: e } of page) {
        if (filter.namespace && e.namespace !== filter.namespace) continue;
        if (filter.kind && e.kind.toLowerCase() !== filter.kind.toLowerCase()) continue;
        if (filter.name && e.name !== filter.name && e.generateName !== filter.name && e.owner?.name !== filter.name) continue;
        out.push(e);
        if (out.length >= limit) return out;
      }
      if (page.length < 500) return out;
      after = page[page.length - 1]!.key;
    }
  }
}

/** The entry's JSON, written around patches that are JSON already. */
function entryJson(head: MutationHead, patchJson: string, reversePatchJson: string): string {
  return `${JSON.stringify(head).slice(0, -1)},"patch":${patchJson},"reversePatch":${reversePatchJson}}`;
}
