// Watch streams as kube-apiserver's watch cache serves them: newline-delimited
// {"type","object"} events over a chunked application/json response, initial state as
// synthetic ADDED events, resume after a resourceVersion (or one ERROR 410 Expired event
// when history no longer reaches back), selector transitions (an object leaving a selector
// is DELETED for that watcher), bookmarks, timeoutSeconds, and hooks that drop streams.
import type { ServerResponse } from 'node:http';

import type { ResourceType } from './resources.ts';
import { apiVersionOf } from './resources.ts';
import { type FieldRequirement, type LabelSelector, matchesFieldSelector, matchesLabelSelector } from './selectors.ts';
import { expired, failure, invalid } from './status.ts';
import type { KubeObject, ObjectStore, StoreEvent } from './store.ts';

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

export interface WatchRequest {
  resource: ResourceType;
  namespace?: string;
  /** Watch of a single object (GET …/name?watch=1 or fieldSelector metadata.name). */
  name?: string;
  labelSelector: LabelSelector;
  fieldSelector: FieldRequirement[];
  resourceVersion?: string;
  resourceVersionMatch?: string;
  timeoutSeconds?: number;
  allowWatchBookmarks: boolean;
  sendInitialEvents?: boolean;
  /** Turns an object into what goes on the wire (the object itself, or a Table row). */
  encode?: (obj: KubeObject) => unknown;
}

export interface WatchHubOptions {
  bookmarkIntervalMs?: number;
  /** Used when the client sends no timeoutSeconds (kube-apiserver: 30–60 minutes). */
  defaultTimeoutSeconds?: number;
}

interface ActiveWatch {
  res: ServerResponse;
  close(mode: 'end' | 'reset'): void;
}

export class WatchHub {
  private readonly store: ObjectStore;
  private readonly active = new Set<ActiveWatch>();
  private readonly bookmarkIntervalMs: number;
  private readonly defaultTimeoutSeconds: number;

  constructor(store: ObjectStore, opts: WatchHubOptions = {}) {
    this.store = store;
    this.bookmarkIntervalMs = opts.bookmarkIntervalMs ?? 60_000;
    this.defaultTimeoutSeconds = opts.defaultTimeoutSeconds ?? 1800;
  }

  get count(): number {
    return this.active.size;
  }

  /**
   * Validates the request and returns a function that starts streaming, so errors found
   * up front (422, 504) are sent as ordinary HTTP errors.
   */
  prepare(req: WatchRequest): (res: ServerResponse) => void {
    if (req.sendInitialEvents !== undefined) {
      const errs = [];
      if (req.sendInitialEvents && !req.allowWatchBookmarks)
        errs.push({
          type: 'FieldValueForbidden' as const,
          field: 'allowWatchBookmarks',
          detail: 'allowWatchBookmarks required when sendInitialEvents is true',
        });
      if (req.resourceVersionMatch !== 'NotOlderThan')
        errs.push({
          type: 'FieldValueForbidden' as const,
          field: 'resourceVersionMatch',
          detail: 'sendInitialEvents requires setting resourceVersionMatch to NotOlderThan',
        });
      if (errs.length) throw invalid({ group: 'meta.k8s.io', kind: 'ListOptions' }, '', errs);
    }
    const rv = req.resourceVersion;
    if (rv !== undefined && rv !== '' && !/^\d+$/.test(rv)) {
      throw invalid({ group: 'meta.k8s.io', kind: 'ListOptions' }, '', [
        { type: 'FieldValueInvalid', field: 'resourceVersion', value: rv, detail: 'must be a number' },
      ]);
    }
    const current = this.store.currentResourceVersion();
    if (rv && rv !== '0' && Number(rv) > current) {
      throw failure(504, 'Timeout', `Too large resource version: ${rv}, current: ${current}`, {
        causes: [{ reason: 'ResourceVersionTooLarge', message: 'Too large resource version' }],
        retryAfterSeconds: 1,
      });
    }
    return (res) => this.stream(req, res);
  }

  /** Ends every open watch: 'end' finishes the response cleanly, 'reset' destroys the socket. */
  dropAll(mode: 'end' | 'reset' = 'end'): number {
    const n = this.active.size;
    for (const w of [...this.active]) w.close(mode);
    return n;
  }

  private stream(req: WatchRequest, res: ServerResponse): void {
    const r = req.resource;
    const encode = req.encode ?? ((o: KubeObject) => o);
    const matches = (o: KubeObject | undefined): boolean =>
      !!o &&
      (!req.namespace || !r.namespaced || o.metadata.namespace === req.namespace) &&
      (!req.name || o.metadata.name === req.name) &&
      matchesLabelSelector(req.labelSelector, o.metadata.labels) &&
      matchesFieldSelector(req.fieldSelector, o as Record<string, unknown>);

    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private', 'Transfer-Encoding': 'chunked' });
    res.flushHeaders();
    let closed = false;
    const write = (type: WatchEventType, object: unknown): void => {
      if (closed) return;
      res.write(`${JSON.stringify({ type, object })}\n`);
    };
    const toWire = (e: StoreEvent): [WatchEventType, KubeObject] | undefined => {
      const now = matches(e.object);
      const before = e.type === 'MODIFIED' ? matches(e.oldObject) : false;
      switch (e.type) {
        case 'ADDED':
          return now ? ['ADDED', e.object] : undefined;
        case 'DELETED':
          return now ? ['DELETED', e.object] : undefined;
        case 'MODIFIED':
          if (now && before) return ['MODIFIED', e.object];
          if (now) return ['ADDED', e.object];
          if (before) {
            const gone = structuredClone(e.oldObject as KubeObject);
            gone.metadata.resourceVersion = String(e.rv);
            return ['DELETED', gone];
          }
          return undefined;
      }
    };

    // Everything below runs in one tick: no store event can slip between replay and subscription.
    const queue: StoreEvent[] = [];
    const unsubscribe = this.store.subscribe((e) => {
      if (e.resource.group !== r.group || e.resource.plural !== r.plural) return;
      queue.push(e);
      flushSoon();
    });
    let flushing = false;
    const flushSoon = (): void => {
      if (flushing) return;
      flushing = true;
      queueMicrotask(() => {
        flushing = false;
        for (const e of queue.splice(0)) {
          const wire = toWire(e);
          if (wire) write(wire[0], encode(wire[1]));
        }
      });
    };

    const bookmark = (initialEventsEnd = false): void => {
      if (!req.allowWatchBookmarks) return;
      const meta: Record<string, unknown> = { resourceVersion: String(this.store.currentResourceVersion()) };
      if (initialEventsEnd) meta['annotations'] = { 'k8s.io/initial-events-end': 'true' };
      write('BOOKMARK', { kind: r.kind, apiVersion: apiVersionOf(r), metadata: meta });
    };

    const rv = req.resourceVersion;
    const initialState = req.sendInitialEvents === true || rv === undefined || rv === '' || rv === '0';
    let expiredNow = false;
    if (initialState) {
      for (const o of this.store.list(r, r.namespaced ? req.namespace : undefined)) if (matches(o)) write('ADDED', encode(o));
      if (req.sendInitialEvents) bookmark(true);
    } else {
      const events = this.store.eventsSince(r, Number(rv));
      if (events === 'expired') {
        expiredNow = true;
        const oldest = this.store.oldestResumableResourceVersion();
        write('ERROR', expired(`too old resource version: ${rv} (${oldest + 1})`).status);
      } else {
        for (const e of events) {
          const wire = toWire(e);
          if (wire) write(wire[0], encode(wire[1]));
        }
      }
    }

    const timers: NodeJS.Timeout[] = [];
    const watch: ActiveWatch = {
      res,
      close: (mode) => {
        if (closed) return;
        cleanup();
        if (mode === 'reset') res.socket?.destroy();
        else res.end();
      },
    };
    const cleanup = (): void => {
      if (closed) return;
      closed = true;
      unsubscribe();
      for (const t of timers) clearTimeout(t);
      this.active.delete(watch);
    };
    if (expiredNow) {
      unsubscribe();
      closed = true;
      res.end();
      return;
    }
    this.active.add(watch);
    res.on('close', cleanup);
    const timeout = req.timeoutSeconds !== undefined && req.timeoutSeconds > 0 ? req.timeoutSeconds : this.defaultTimeoutSeconds;
    timers.push(setTimeout(() => watch.close('end'), timeout * 1000));
    if (req.allowWatchBookmarks) {
      const interval = setInterval(() => bookmark(), this.bookmarkIntervalMs);
      timers.push(interval);
    }
  }
}
