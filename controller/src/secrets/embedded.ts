/**
 * Local mode's secret store: KV v2-shaped paths (`secret/app/db` → keys and values, with a
 * version that grows by one on every write), kept in the controller's embedded store (the
 * state directory's LevelDB, synced on write) so values survive a restart. Only the newest
 * version is kept. Values are never logged; listings show paths, versions and key names.
 * Writers are told of each new version (`onChange`), which local mode turns into a rotation
 * pushed to the pods holding the path — the way a new Vault version reaches them.
 */
import { ErrorCodes, NemuError } from '#common/errors.js';

import type { Store } from '../store/store.ts';

const PREFIX = 'secrets/kv/';
/** A key as the `vault:<mount>/<path>#<key>` references name it. */
const KEY = /^[^#\s]{1,256}$/;
const MAX_KEYS = 64;

export interface KvVersion {
  data: Record<string, string>;
  version: number;
  /** When this version was written (ISO 8601). */
  createdTime: string;
}

export interface KvListing {
  path: string;
  version: number;
  keys: string[];
  createdTime: string;
}

export class EmbeddedSecretStore {
  private readonly listeners = new Set<(path: string, version: number) => void>();
  /** Writes of one path are serialized, so versions are 1, 2, 3… even under concurrent puts. */
  private readonly writing = new Map<string, Promise<unknown>>();

  constructor(private readonly store: Store) {}

  /** Writes a new version of `path` (already normalized, e.g. by normalizeSecretPath). */
  async put(path: string, data: Record<string, unknown>): Promise<KvVersion> {
    const values = checkData(path, data);
    const previous = this.writing.get(path) ?? Promise.resolve();
    const next = previous
      .catch(() => undefined)
      .then(async () => {
        const current = await this.store.get<KvVersion>(PREFIX + path);
        const entry: KvVersion = { data: values, version: (current?.version ?? 0) + 1, createdTime: new Date().toISOString() };
        await this.store.put(PREFIX + path, entry);
        return entry;
      });
    this.writing.set(path, next);
    void next.finally(() => {
      if (this.writing.get(path) === next) this.writing.delete(path);
    });
    return next.then((entry) => {
      for (const l of this.listeners) l(path, entry.version);
      return entry;
    });
  }

  read(path: string): Promise<KvVersion | undefined> {
    return this.store.get<KvVersion>(PREFIX + path);
  }

  /** Paths with their version and key names, never values. */
  async list(): Promise<KvListing[]> {
    const entries = await this.store.list<KvVersion>(PREFIX);
    return entries.map((e) => ({
      path: e.key.slice(PREFIX.length),
      version: e.value.version,
      keys: Object.keys(e.value.data).sort(),
      createdTime: e.value.createdTime,
    }));
  }

  /** `listener(path, version)` after every write; returns a function that stops it. */
  onChange(listener: (path: string, version: number) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

function checkData(path: string, data: Record<string, unknown>): Record<string, string> {
  const bad = (why: string) => new NemuError(ErrorCodes.BAD_REQUEST, `the data for ${path} ${why}`, { status: 400 });
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw bad('must be an object of key → string value');
  const keys = Object.keys(data);
  if (keys.length === 0) throw bad('has no keys; give at least one key=value');
  if (keys.length > MAX_KEYS) throw bad(`has ${keys.length} keys; at most ${MAX_KEYS} per path`);
  const out: Record<string, string> = {};
  for (const k of keys) {
    // The key is named, its value never (not even its type is echoed back).
    if (!KEY.test(k)) throw bad(`has a key ${JSON.stringify(k.slice(0, 64))} that a reference cannot name (no '#' or whitespace, at most 256 characters)`);
    const v = data[k];
    if (typeof v !== 'string') throw bad(`has a value for key "${k}" that is not a string`);
    out[k] = v;
  }
  return out;
}
