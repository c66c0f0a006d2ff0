/**
 * The audit log: every state-changing REST call (dictionary writes, rollbacks, skip-rule
 * deletes, flips, rotations, profiles, refreshes) with who made it, what it was about, when,
 * and how it ended — allowed and done, refused, or failed. Kept in the store beside the
 * mutation log, so it is as durable and as shared between replicas. It holds names and
 * references only: never a token, a request body or a secret value.
 */
import type { Logger } from '#common/log.js';

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
  /** Refusals of one user and action within an hour share one record: how many, and the last. */
  count?: number;
  lastTime?: string;
}

export interface AuditFilter {
  user?: string;
  namespace?: string;
  limit?: number;
}

const PREFIX = 'audit/';
/** Refusals of one user and action are folded into one record per this window. */
const DENIAL_WINDOW_MS = 3600_000;
/** A folded record is rewritten with its count at most this often. */
const DENIAL_REWRITE_MS = 10_000;
/** Longest value kept from a request (a path, a parameter): anything longer is cut. */
const MAX_VALUE = 253;
/** Records `list` reads at most when a filter skips most of them. */
const MAX_SCANNED = 20_000;

function clip(s: string, max = MAX_VALUE): string {
  return s.length > max ? `${s.slice(0, max)}…(${s.length} chars)` : s;
}

export class AuditLog {
  /** Open refusal records, by user and action. */
  private readonly denials = new Map<string, { entry: AuditEntry; since: number; writtenAt: number }>();

  constructor(
    private readonly store: Store,
    private readonly log: Logger,
    private readonly opts: { maxAgeMs: number; now?: () => number } = { maxAgeMs: 30 * 24 * 3600_000 },
  ) {}

  /**
   * Writes the record. Request-given text (path, parameters) is cut to a bounded length, and
   * refusals — which any authenticated caller, any pod's token, can produce — are folded into
   * one record per user, action and hour with a count, so they cannot fill the store. A record
   * that cannot be written is logged (without values) and the call it describes is not undone.
   */
  async record(e: Omit<AuditEntry, 'id' | 'time'>): Promise<AuditEntry> {
    const now = (this.opts.now ?? Date.now)();
    const target = Object.fromEntries(Object.entries(e.target).map(([k, v]) => [clip(k, 63), clip(v)]));
    const clean = { ...e, path: clip(e.path, 512), target, ...(e.namespace ? { namespace: clip(e.namespace) } : {}) };
    if (e.outcome === 'denied') return this.recordDenial(clean, now);
    const entry: AuditEntry = { id: mutationId(now), time: new Date(now).toISOString(), ...clean };
    await this.write(entry);
    return entry;
  }

  private async recordDenial(e: Omit<AuditEntry, 'id' | 'time'>, now: number): Promise<AuditEntry> {
    const key = `${e.user}\u0000${e.action}`;
    const open = this.denials.get(key);
    if (open && now - open.since < DENIAL_WINDOW_MS) {
      open.entry.count = (open.entry.count ?? 1) + 1;
      open.entry.lastTime = new Date(now).toISOString();
      if (now - open.writtenAt >= DENIAL_REWRITE_MS) {
        open.writtenAt = now;
        await this.write(open.entry);
      }
      return open.entry;
    }
    const entry: AuditEntry = { id: mutationId(now), time: new Date(now).toISOString(), ...e, count: 1 };
    this.denials.delete(key);
    this.denials.set(key, { entry, since: now, writtenAt: now });
    if (this.denials.size > 10_000) this.denials.delete(this.denials.keys().next().value!);
    await this.write(entry);
    return entry;
  }

  private async write(entry: AuditEntry): Promise<void> {
    try {
      await this.store.put(PREFIX + entry.id, entry);
    } catch (err) {
      this.log.error({ err: (err as Error).message, action: entry.action, user: entry.user, outcome: entry.outcome }, 'audit record could not be written');
    }
  }

  /** Newest first. */
  async list(filter: AuditFilter = {}): Promise<AuditEntry[]> {
    const limit = Math.min(Math.max(filter.limit ?? 100, 1), 1000);
    const out: AuditEntry[] = [];
    let after: string | undefined;
    for (let scanned = 0; scanned < MAX_SCANNED; scanned += 500) {
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
    return out;
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
