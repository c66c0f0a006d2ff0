/**
 * The controller's durable key/value store: the mutation log, profiles, skip rules and, in
 * local mode, the dictionary live here. Keys are strings ordered lexicographically, so a
 * prefix names a collection ("mutations/", "profiles/") and time-ordered ids list in order.
 */
export interface StoreEntry<T> {
  key: string;
  value: T;
}

export interface ListOptions {
  limit?: number;
  /** Newest first when keys embed a time-ordered id. */
  reverse?: boolean;
  /** Exclusive lower bound (resume a listing after this key). */
  after?: string;
}

/** What a copy of a collection needs to stay current (see `Store.watch`). */
export interface StoreWatcher {
  /** Keys under the watched prefix that some replica wrote or deleted, one notice per batch. */
  changed(keys: string[]): void;
  /**
   * Whether notices are arriving. Only while live may a copy be trusted: a notice sent while
   * not live may have been missed, so the caller reads the store itself until live again.
   */
  live(live: boolean): void;
}

export type StoreOp =
  /** `json`, when given, is `value` already serialized (a caller that has it saves a stringify). */
  { type: 'put'; key: string; value: unknown; json?: string } | { type: 'del'; key: string };

export interface Store {
  /**
   * True when other processes write the same store (Redis shared by replicas): callers must
   * not keep their own copies of its data. False for the embedded store, which one process owns.
   */
  readonly shared: boolean;
  get<T>(key: string): Promise<T | undefined>;
  put(key: string, value: unknown): Promise<void>;
  del(key: string): Promise<void>;
  /** Atomic: every operation is applied, or none. */
  batch(ops: StoreOp[]): Promise<void>;
  list<T>(prefix: string, opts?: ListOptions): Promise<Array<StoreEntry<T>>>;
  /**
   * Change notices from every replica for keys under `prefix`, so a shared store's small,
   * hot, rarely written collections (skip rules) can be kept in memory. Shared stores only;
   * returns a function that stops watching.
   */
  watch?(prefix: string, watcher: StoreWatcher): () => void;
  close(): Promise<void>;
}
