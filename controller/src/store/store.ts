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

export type StoreOp = { type: 'put'; key: string; value: unknown } | { type: 'del'; key: string };

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
  close(): Promise<void>;
}
