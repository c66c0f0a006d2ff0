/**
 * The mutation log: every mutation that was answered with a patch, durable in the store
 * under `mutations/<id>` (time-ordered ids, so a reverse listing is newest first).
 *
 * Writes leave the admission path: `append` queues the entry and returns at once; queued
 * entries are written in one synced batch (group commit) at most `GROUP_COMMIT_MS` later, or
 * as soon as `GROUP_COMMIT_MAX` are queued, so a burst of reviews costs one fsync (one Redis
 * transaction), not one each. Reading the log (`get`, `list`) and shutting down flush first,
 * so the window is never visible through the API. `flush` waits for everything queued so far.
 */
import type { Operation } from 'fast-json-patch';
import type { Logger } from '../../../common/src/log.ts';
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

/** An entry without its patches: what `appendJson` takes, with the patches already serialized. */
export type MutationHead = Omit<MutationEntry, 'patch' | 'reversePatch'>;

export interface MutationFilter {
  namespace?: string;
  name?: string;
  kind?: string;
  limit?: number;
}

const PREFIX = 'mutations/';
/** How long an appended entry may wait for others to share its write. */
export const GROUP_COMMIT_MS = 10;
/** Queued entries that are written at once, without waiting for the window to end. */
export const GROUP_COMMIT_MAX = 256;

/**
 * An entry waiting for its write: only its key and its JSON. The entry object and the patch
 * operations it points at (which share values with the reviewed object) can go as soon as
 * the review is answered, instead of being held through the window and the write.
 */
interface Queued {
  key: string;
  json: string;
}

export class MutationLog {
  private queue: Queued[] = [];
  private writing: Promise<void> = Promise.resolve();
  private scheduled = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly store: Store, private readonly log: Logger) {}

  /** Queues an entry. */
  append(entry: MutationEntry): void {
    const { patch, reversePatch, ...head } = entry;
    this.appendJson(head, JSON.stringify(patch), JSON.stringify(reversePatch));
  }

  /**
   * Queues an entry whose patches the caller has already serialized (the admission answer
   * carries the forward patch as JSON anyway): the entry is written around them.
   */
  appendJson(head: MutationHead, patchJson: string, reversePatchJson: string): void {
    this.queue.push({ key: PREFIX + head.id, json: `${JSON.stringify(head).slice(0, -1)},"patch":${patchJson},"reversePatch":${reversePatchJson}}` });
    if (this.queue.length >= GROUP_COMMIT_MAX) this.kick();
    else this.timer ??= setTimeout(() => this.kick(), GROUP_COMMIT_MS);
  }

  /** Writes what is queued once the write in progress (if any) is done. */
  private kick(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.scheduled) return;
    this.scheduled = true;
    this.writing = this.writing.then(() => this.drain());
  }

  private async drain(): Promise<void> {
    this.scheduled = false;
    const batch = this.queue;
    this.queue = [];
    if (batch.length === 0) return;
    try {
      // `json` is the value, serialized: the stores write it as it is.
      await this.store.batch(batch.map(({ key, json }) => ({ type: 'put' as const, key, value: undefined, json })));
    } catch (err) {
      this.log.error({ err, ids: batch.map((q) => q.key.slice(PREFIX.length)) }, 'mutation log entries could not be written; these mutations cannot be rolled back');
    }
  }

  /** Resolves when every entry appended so far is on disk. */
  async flush(): Promise<void> {
    while (this.scheduled || this.queue.length > 0) {
      this.kick();
      await this.writing;
    }
    await this.writing;
  }

  async get(id: string): Promise<MutationEntry | undefined> {
    await this.flush();
    return this.store.get<MutationEntry>(PREFIX + id);
  }

  async update(entry: MutationEntry): Promise<void> {
    await this.store.put(PREFIX + entry.id, entry);
  }

  /** Newest first, filtered. */
  async list(filter: MutationFilter = {}): Promise<MutationEntry[]> {
    await this.flush();
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
