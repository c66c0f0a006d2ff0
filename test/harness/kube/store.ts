// The double's "etcd": an in-memory object store keyed by (resource, namespace, name) with
// one global resourceVersion counter and a bounded history of events for watch resumes.
// It knows nothing about HTTP, admission or validation; the registry does that.
import { resourceKey, type ResourceType } from './resources.ts';
import { alreadyExists, conflict, notFound } from './status.ts';

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
  finalizers?: string[];
  [key: string]: unknown;
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  [key: string]: unknown;
}

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface StoreEvent {
  rv: number;
  type: EventType;
  resource: ResourceType;
  object: KubeObject;
  /** The previous state, for MODIFIED and DELETED (field/label selector transitions). */
  oldObject?: KubeObject;
}

export type StoreListener = (event: StoreEvent) => void;

function objectKey(namespace: string | undefined, name: string): string {
  return `${namespace ?? ''}/${name}`;
}

export function clone<T>(value: T): T {
  return structuredClone(value);
}

export class ObjectStore {
  private rv: number;
  private readonly objects = new Map<string, Map<string, KubeObject>>();
  private history: StoreEvent[] = [];
  /** Events with rv <= floor are no longer in history: resuming from before it is 410 Gone. */
  private floor: number;
  private readonly listeners = new Set<StoreListener>();
  readonly historySize: number;

  constructor(opts: { historySize?: number; initialResourceVersion?: number } = {}) {
    this.historySize = opts.historySize ?? 1000;
    this.rv = opts.initialResourceVersion ?? 1000;
    this.floor = this.rv;
  }

  currentResourceVersion(): number {
    return this.rv;
  }

  oldestResumableResourceVersion(): number {
    return this.floor;
  }

  get(r: ResourceType, namespace: string | undefined, name: string): KubeObject | undefined {
    const obj = this.bucket(r).get(objectKey(r.namespaced ? namespace : undefined, name));
    return obj ? clone(obj) : undefined;
  }

  /** Sorted by namespace then name, like etcd's key order. */
  list(r: ResourceType, namespace?: string): KubeObject[] {
    const out: KubeObject[] = [];
    for (const obj of this.bucket(r).values()) {
      if (namespace && r.namespaced && obj.metadata.namespace !== namespace) continue;
      out.push(clone(obj));
    }
    return out.sort((a, b) => {
      const ka = objectKey(a.metadata.namespace, a.metadata.name ?? '');
      const kb = objectKey(b.metadata.namespace, b.metadata.name ?? '');
      return ka < kb ? -1 : ka > kb ? 1 : 0;
    });
  }

  /** Stores a new object; metadata.name must be set. Returns the stored copy. */
  create(r: ResourceType, obj: KubeObject): KubeObject {
    const name = obj.metadata.name as string;
    const key = objectKey(r.namespaced ? obj.metadata.namespace : undefined, name);
    const bucket = this.bucket(r);
    if (bucket.has(key)) throw alreadyExists(r, name);
    const stored = clone(obj);
    stored.metadata.resourceVersion = String(++this.rv);
    bucket.set(key, stored);
    this.emit({ rv: this.rv, type: 'ADDED', resource: r, object: clone(stored) });
    return clone(stored);
  }

  /**
   * Replaces an existing object. With expectedResourceVersion, a stale writer gets 409
   * Conflict (optimistic concurrency, as etcd's compare-and-swap in GuaranteedUpdate).
   */
  update(r: ResourceType, obj: KubeObject, expectedResourceVersion?: string): KubeObject {
    const name = obj.metadata.name as string;
    const key = objectKey(r.namespaced ? obj.metadata.namespace : undefined, name);
    const bucket = this.bucket(r);
    const old = bucket.get(key);
    if (!old) throw notFound(r, name);
    if (expectedResourceVersion !== undefined && expectedResourceVersion !== '' && expectedResourceVersion !== old.metadata.resourceVersion) {
      throw conflict(r, name);
    }
    const stored = clone(obj);
    stored.metadata.resourceVersion = String(++this.rv);
    bucket.set(key, stored);
    this.emit({ rv: this.rv, type: 'MODIFIED', resource: r, object: clone(stored), oldObject: clone(old) });
    return clone(stored);
  }

  /** Removes an object; the DELETED event carries the deletion's resourceVersion. */
  delete(r: ResourceType, namespace: string | undefined, name: string, expectedResourceVersion?: string): KubeObject {
    const key = objectKey(r.namespaced ? namespace : undefined, name);
    const bucket = this.bucket(r);
    const old = bucket.get(key);
    if (!old) throw notFound(r, name);
    if (expectedResourceVersion !== undefined && expectedResourceVersion !== '' && expectedResourceVersion !== old.metadata.resourceVersion) {
      throw conflict(r, name);
    }
    bucket.delete(key);
    const gone = clone(old);
    gone.metadata.resourceVersion = String(++this.rv);
    this.emit({ rv: this.rv, type: 'DELETED', resource: r, object: clone(gone), oldObject: clone(old) });
    return gone;
  }

  /**
   * Events after `rv` for resource r, oldest first, or 'expired' when some of them have
   * been dropped from history (the watch must relist: 410 Gone).
   */
  eventsSince(r: ResourceType, rv: number): StoreEvent[] | 'expired' {
    if (rv < this.floor) return 'expired';
    const key = resourceKey(r);
    return this.history.filter((e) => e.rv > rv && resourceKey(e.resource) === key).map((e) => ({ ...e, object: clone(e.object) }));
  }

  subscribe(listener: StoreListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Forgets all history (as an etcd compaction): any resume from an older version gets 410. */
  compact(): void {
    this.history = [];
    this.floor = this.rv;
  }

  private bucket(r: ResourceType): Map<string, KubeObject> {
    const key = resourceKey(r);
    let bucket = this.objects.get(key);
    if (!bucket) {
      bucket = new Map();
      this.objects.set(key, bucket);
    }
    return bucket;
  }

  private emit(event: StoreEvent): void {
    this.history.push(event);
    if (this.history.length > this.historySize) {
      const dropped = this.history.splice(0, this.history.length - this.historySize);
      this.floor = (dropped[dropped.length - 1] as StoreEvent).rv;
    }
    for (const l of [...this.listeners]) {
      try {
        l(event);
      } catch {
        // A listener's failure must not break the write that triggered it.
      }
    }
  }
}
