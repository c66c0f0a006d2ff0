/**
 * The dictionary (the seed's "third-party database"): placeholder keys such as
 * `nemu_label_<hash>` and their real values. One interface, several backends: Redis in
 * production, the embedded store in local mode, memory in tests.
 */
import { ErrorCodes, NemuError } from '#common/errors.js';

import { valueProblem } from './validate.ts';

export interface DictionaryEntry {
  key: string;
  value: string;
}

export interface Dictionary {
  readonly backend: 'redis' | 'embedded' | 'memory';
  /** Values of the keys that exist, in one round trip. Throws NEMU_ERR_DICT_UNREACHABLE when the backend does not answer in time. */
  lookup(keys: readonly string[]): Promise<Map<string, string>>;
  get(key: string): Promise<string | undefined>;
  set(key: string, value: string): Promise<void>;
  /** Whether the key existed. */
  del(key: string): Promise<boolean>;
  /** Entries in key order. */
  list(opts?: { prefix?: string; limit?: number }): Promise<DictionaryEntry[]>;
  close(): Promise<void>;
}

export const MAX_KEY_LENGTH = 1024;
export const MAX_VALUE_BYTES = 256 * 1024;

/**
 * Keys and values are checked at the edges (REST, CLI); a message says what is wrong.
 * `checkEntry(key)` checks the key (reads, deletes); `checkEntry(key, value)` is a write and
 * also requires the value, even when the argument is `undefined` (a body without `value`).
 */
export function checkEntry(key: string): void;
export function checkEntry(key: string, value: unknown): void;
export function checkEntry(key: string, ...value: unknown[]): void {
  checkKey(key);
  if (value.length > 0) checkValue(key, value[0]);
}

export function checkKey(key: string): void {
  if (typeof key !== 'string' || key === '' || key.length > MAX_KEY_LENGTH || /[\s\p{Cc}]/u.test(key)) {
    throw new NemuError(
      ErrorCodes.BAD_REQUEST,
      `dictionary key ${JSON.stringify(key)} is not valid: use 1 to ${MAX_KEY_LENGTH} characters without spaces, e.g. nemu_label_ab12`,
      { status: 400 },
    );
  }
}

/** A value to write under `key`: a string within the size, of the form the key's mutator reads (`validate.ts`). */
export function checkValue(key: string, value: unknown): asserts value is string {
  if (value === undefined) throw new NemuError(ErrorCodes.BAD_REQUEST, `dictionary value for ${key} is missing; send {"value": "..."}`, { status: 400 });
  if (typeof value !== 'string')
    throw new NemuError(ErrorCodes.BAD_REQUEST, `dictionary value for ${key} must be a string; send {"value": "..."}`, { status: 400 });
  if (Buffer.byteLength(value) > MAX_VALUE_BYTES)
    throw new NemuError(ErrorCodes.BAD_REQUEST, `dictionary value for ${key} is larger than ${MAX_VALUE_BYTES} bytes`, { status: 400 });
  const problem = valueProblem(key, value);
  if (problem) throw new NemuError(ErrorCodes.BAD_REQUEST, problem, { status: 400 });
}

/** In memory: tests and benchmarks. */
export class MemoryDictionary implements Dictionary {
  readonly backend = 'memory' as const;
  private readonly entries = new Map<string, string>();

  constructor(initial: Record<string, string> = {}) {
    for (const [k, v] of Object.entries(initial)) this.entries.set(k, v);
  }

  async lookup(keys: readonly string[]): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    for (const k of keys) {
      const v = this.entries.get(k);
      if (v !== undefined) out.set(k, v);
    }
    return out;
  }
  async get(key: string): Promise<string | undefined> {
    return this.entries.get(key);
  }
  async set(key: string, value: string): Promise<void> {
    this.entries.set(key, value);
  }
  async del(key: string): Promise<boolean> {
    return this.entries.delete(key);
  }
  async list(opts: { prefix?: string; limit?: number } = {}): Promise<DictionaryEntry[]> {
    const keys = [...this.entries.keys()].filter((k) => k.startsWith(opts.prefix ?? '')).sort();
    return keys.slice(0, opts.limit ?? keys.length).map((key) => ({ key, value: this.entries.get(key)! }));
  }
  async close(): Promise<void> {}
}
