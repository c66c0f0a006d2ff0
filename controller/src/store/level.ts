/**
 * Embedded durable store on LevelDB (classic-level): the local-mode default. Values are
 * JSON text (serialized here, or by the caller: `StoreOp.json`); writes are synced to disk before they are acknowledged, so an entry of the mutation
 * log that was answered is not lost in a crash.
 */
import { mkdirSync } from 'node:fs';
import { ClassicLevel } from 'classic-level';

import { ErrorCodes, NemuError } from '#common/errors.js';

import type { ListOptions, Store, StoreEntry, StoreOp } from './store.ts';

export class LevelStore implements Store {
  readonly shared = false;

  private constructor(
    private readonly db: ClassicLevel<string, string>,
    readonly path: string,
  ) {}

  static async open(path: string): Promise<LevelStore> {
    mkdirSync(path, { recursive: true });
    const db = new ClassicLevel<string, string>(path, { valueEncoding: 'utf8' });
    try {
      await db.open();
    } catch (e) {
      const cause = (e as { cause?: Error }).cause ?? (e as Error);
      throw new NemuError(
        ErrorCodes.STORE,
        `cannot open the embedded store at ${path}: ${cause.message}. Is another nemutator process using the same state directory? Stop it or pass a different --state-dir.`,
        { cause: e },
      );
    }
    return new LevelStore(db, path);
  }

  async get<T>(key: string): Promise<T | undefined> {
    const v = await this.db.get(key);
    return v === undefined ? undefined : (JSON.parse(v) as T);
  }

  async put(key: string, value: unknown): Promise<void> {
    await this.db.put(key, JSON.stringify(value), { sync: true });
  }

  async del(key: string): Promise<void> {
    await this.db.del(key, { sync: true });
  }

  async batch(ops: StoreOp[]): Promise<void> {
    await this.db.batch(
      ops.map((op) =>
        op.type === 'put' ? { type: 'put' as const, key: op.key, value: op.json ?? JSON.stringify(op.value) } : { type: 'del' as const, key: op.key },
      ),
      { sync: true },
    );
  }

  async list<T>(prefix: string, opts: ListOptions = {}): Promise<Array<StoreEntry<T>>> {
    const range: { gte?: string; gt?: string; lt: string; lte?: string; reverse: boolean; limit: number } = {
      lt: prefix + '\uffff',
      reverse: opts.reverse ?? false,
      limit: opts.limit ?? -1,
    };
    if (opts.after !== undefined && !opts.reverse) range.gt = opts.after;
    else range.gte = prefix;
    if (opts.after !== undefined && opts.reverse) {
      range.lt = opts.after;
      range.gte = prefix;
    }
    const out: Array<StoreEntry<T>> = [];
    for await (const [key, value] of this.db.iterator(range)) out.push({ key, value: JSON.parse(value) as T });
    return out;
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}
