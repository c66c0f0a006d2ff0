/**
 * The mutation log: every mutation that was answered with a patch, durable in the store
 * under `mutations/<id>` (time-ordered ids, so a reverse listing is newest first).
 *
 * Writes leave the admission path: `append` queues the entry and returns at once; queued
 * entries are written in one synced batch (group commit), so a burst of reviews costs one
 * fsync, not one each. `flush` waits for everything queued so far.
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

export interface MutationFilter {
  namespace?: string;
  name?: string;
  kind?: string;
  limit?: number;
}

const PREFIX = 'mutations/';

export class MutationLog {
  private queue: MutationEntry[] = [];
  private writing: Promise<void> = Promise.resolve();
  private scheduled = false;

  constructor(private readonly store: Store, private readonly log: Logger) {}

  append(entry: MutationEntry): void {
    this.queue.push(entry);
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
      await this.store.batch(batch.map((e) => ({ type: 'put' as const, key: PREFIX + e.id, value: e })));
    } catch (err) {
      this.log.error({ err, ids: batch.map((e) => e.id) }, 'mutation log entries could not be written; these mutations cannot be rolled back');
    }
  }

  /** Resolves when every entry appended so far is on disk. */
  async flush(): Promise<void> {
    while (this.scheduled || this.queue.length > 0) await this.writing;
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
