/**
 * The dictionary in the controller's embedded durable store (local-mode default): entries
 * under `dictionary/<key>`. A lookup is a handful of in-process reads.
 */
import type { Store } from '../store/store.ts';
import type { Dictionary, DictionaryEntry } from './dictionary.ts';

const PREFIX = 'dictionary/';

export class EmbeddedDictionary implements Dictionary {
  readonly backend = 'embedded' as const;
  constructor(private readonly store: Store) {}

  async lookup(keys: readonly string[]): Promise<Map<string, string>> {
    const values = await Promise.all(keys.map((k) => this.store.get<string>(PREFIX + k)));
    const out = new Map<string, string>();
    keys.forEach((k, i) => {
      const v = values[i];
      if (typeof v === 'string') out.set(k, v);
    });
    return out;
  }
  async get(key: string): Promise<string | undefined> {
    const v = await this.store.get<string>(PREFIX + key);
    return typeof v === 'string' ? v : undefined;
  }
  async set(key: string, value: string): Promise<void> {
    await this.store.put(PREFIX + key, value);
  }
  async del(key: string): Promise<boolean> {
    const had = (await this.get(key)) !== undefined;
    if (had) await this.store.del(PREFIX + key);
    return had;
  }
  async list(opts: { prefix?: string; limit?: number } = {}): Promise<DictionaryEntry[]> {
    const rows = await this.store.list<string>(PREFIX + (opts.prefix ?? ''), opts.limit === undefined ? {} : { limit: opts.limit });
    return rows.map((r) => ({ key: r.key.slice(PREFIX.length), value: r.value }));
  }
  async close(): Promise<void> {}
}
