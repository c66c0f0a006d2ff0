/**
 * Profiles in the controller's durable store, under `profiles/<id>` with time-ordered ids,
 * pruned after every write: at most `retention` profiles, none older than `maxAge`.
 */
import { randomBytes } from 'node:crypto';

import type { Store } from '../store/store.ts';
import type { StoredProfile } from './model.ts';

const PREFIX = 'profiles/';

/** Sorts by creation time: 9 base-36 digits of milliseconds, then randomness. */
export function newProfileId(now = Date.now()): string {
  return `${now.toString(36).padStart(9, '0')}-${randomBytes(4).toString('hex')}`;
}

export type ProfileSummary = Omit<StoredProfile, 'data'> & { samples: number; processes: StoredProfile['data']['processes']; warnings: string[] };

export function summarize(p: StoredProfile): ProfileSummary {
  const { data, ...meta } = p;
  return { ...meta, samples: data.samples.reduce((a, s) => a + s.count, 0), processes: data.processes, warnings: data.warnings };
}

export class ProfileStore {
  constructor(
    private readonly store: Store,
    private readonly retention: number,
    private readonly maxAgeMs: number,
    private readonly clock: () => number = Date.now,
  ) {}

  async put(p: StoredProfile): Promise<void> {
    await this.store.put(PREFIX + p.id, p);
    await this.prune();
  }

  get(id: string): Promise<StoredProfile | undefined> {
    if (!/^[0-9a-z]{9}-[0-9a-f]{8}$/.test(id)) return Promise.resolve(undefined);
    return this.store.get<StoredProfile>(PREFIX + id);
  }

  /** Newest first, optionally of one pod. */
  async list(filter: { namespace?: string; pod?: string; limit?: number } = {}): Promise<StoredProfile[]> {
    const all = await this.store.list<StoredProfile>(PREFIX, { reverse: true });
    return all
      .map((e) => e.value)
      .filter((p) => (filter.namespace === undefined || p.target.namespace === filter.namespace) && (filter.pod === undefined || p.target.pod === filter.pod))
      .slice(0, filter.limit ?? Number.MAX_SAFE_INTEGER);
  }

  async prune(): Promise<number> {
    const all = await this.store.list<StoredProfile>(PREFIX, { reverse: true });
    const cutoff = this.clock() - this.maxAgeMs;
    const doomed = all.filter((e, i) => i >= this.retention || Date.parse(e.value.createdAt) < cutoff);
    if (doomed.length > 0) await this.store.batch(doomed.map((e) => ({ type: 'del' as const, key: e.key })));
    return doomed.length;
  }
}
