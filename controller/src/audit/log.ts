/**
 * The audit log: every state-changing REST call (dictionary writes, rollbacks, skip-rule
 * deletes, flips, rotations, profiles, refreshes) with who made it, what it was about, when,
 * and how it ended — allowed and done, refused, or failed. Kept in the store beside the
 * mutation log, so it is as durable and as shared between replicas. It holds names and
 * references only: never a token, a request body or a secret value.
 */
import type { Logger } from '../../../common/src/log.ts';
import { mutationId } from '../mutations/id.ts';
import type { Store } from '../store/store.ts';

export interface AuditEntry {
  id: string;
  time: string;
  user: string;
  groups: string[];
  /** `update dictionary`, `create mutations/rollback`: the permission the action needs. */
  action: string;
  method: string;
  path: string;
  /** What it was about: the route's parameters (key, id, namespace, …) and what the handler added. */
  target: Record<string, string>;
  namespace?: string;
  outcome: 'succeeded' | 'denied' | 'failed';
  status: number;
  /** The error code when it did not succeed. */
  code?: string;
}

export interface AuditFilter {
  user?: string;
  namespace?: string;
  limit?: number;
}

const PREFIX = 'audit/';

export class AuditLog {
  constructor(
    private readonly store: Store,
    private readonly log: Logger,
    private readonly opts: { maxAgeMs: number; now?: () => number } = { maxAgeMs: 30 * 24 * 3600_000 },
  ) {}

  /**
   * Writes the record. A record that cannot be written is logged (without values) and the
   * call it describes is not undone: the action already happened.
   */
  async record(e: Omit<AuditEntry, 'id' | 'time'>): Promise<AuditEntry> {
    const now = (this.opts.now ?? Date.now)();
    const entry: AuditEntry = { id: mutationId(now), time: new Date(now).toISOString(), ...e };
    try {
      await this.store.put(PREFIX + entry.id, entry);
    } catch (err) {
      this.log.error({ err: (err as Error).message, action: entry.action, user: entry.user, outcome: entry.outcome }, 'audit record could not be written');
    }
    return entry;
  }

  /** Newest first. */
  async list(filter: AuditFilter = {}): Promise<AuditEntry[]> {
    const limit = Math.min(Math.max(filter.limit ?? 100, 1), 1000);
    const out: AuditEntry[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await this.store.list<AuditEntry>(PREFIX, after === undefined ? { reverse: true, limit: 500 } : { reverse: true, limit: 500, after });
      for (const { value: e } of page) {
        if (filter.user && e.user !== filter.user) continue;
        if (filter.namespace && e.namespace !== filter.namespace) continue;
        out.push(e);
        if (out.length >= limit) return out;
      }
      if (page.length < 500) return out;
      after = page[page.length - 1]!.key;
    }
  }

  /** Deletes records older than `maxAgeMs`, oldest first; returns how many. */
  async prune(): Promise<number> {
    const cutoff = new Date((this.opts.now ?? Date.now)() - this.opts.maxAgeMs).toISOString();
    let removed = 0;
    for (;;) {
      const page = await this.store.list<AuditEntry>(PREFIX, { limit: 500 });
      const old = page.filter((p) => p.value.time < cutoff);
      if (old.length === 0) return removed;
      await this.store.batch(old.map((p) => ({ type: 'del', key: p.key })));
      removed += old.length;
      if (old.length < page.length) return removed;
    }
  }
}
