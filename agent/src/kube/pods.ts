/**
 * The pods of this node, kept current as an informer does it (list, then watch from the
 * list's resourceVersion with fieldSelector spec.nodeName=<node>; a 410 Gone or a broken
 * watch → list again), as the kubelet would see them. The agent names pods and containers
 * in its reports with it, and the secrets socket reads a pod's declared references from it.
 * Pods are found by UID, containers by runtime container id.
 */
import type { V1Pod } from '@kubernetes/client-node';

import type { Logger } from '#common/log.js';

import type { PodNames } from '../report.ts';
import type { KubeApi } from './api.ts';

/** "containerd://abc…" → "abc…" */
export function containerIdOf(runtimeId: string | undefined): string | undefined {
  if (!runtimeId) return undefined;
  const i = runtimeId.indexOf('://');
  return i >= 0 ? runtimeId.slice(i + 3) : runtimeId;
}

/** Container names by container id, from the pod's status (init and ephemeral containers included). */
export function containerNamesById(pod: V1Pod): Record<string, string> {
  const out: Record<string, string> = {};
  const s = pod.status;
  for (const c of [...(s?.containerStatuses ?? []), ...(s?.initContainerStatuses ?? []), ...(s?.ephemeralContainerStatuses ?? [])]) {
    const id = containerIdOf(c.containerID);
    if (id) out[id] = c.name;
  }
  return out;
}

interface PodList {
  metadata?: { resourceVersion?: string };
  items?: V1Pod[];
}

export class NodePods {
  private byUid = new Map<string, V1Pod>();
  private resourceVersion = '';
  private synced = false;
  private abort: AbortController | undefined;
  private loop: Promise<void> | undefined;

  constructor(
    private readonly api: KubeApi,
    readonly nodeName: string,
    private readonly log: Logger,
    private readonly retryMs = 1000,
  ) {}

  private query(extra: string): string {
    return `/api/v1/pods?fieldSelector=${encodeURIComponent(`spec.nodeName=${this.nodeName}`)}${extra}`;
  }

  private async relist(signal: AbortSignal): Promise<void> {
    const list = await this.api.json<PodList>(this.query(''), signal);
    const next = new Map<string, V1Pod>();
    for (const pod of list.items ?? []) if (pod.metadata?.uid) next.set(pod.metadata.uid, pod);
    this.byUid = next;
    this.resourceVersion = list.metadata?.resourceVersion ?? '';
    this.synced = true;
  }

  /** Lists once (so the first report already has names), then watches in the background. */
  async start(): Promise<void> {
    if (this.abort) return;
    const abort = new AbortController();
    this.abort = abort;
    try {
      await this.relist(abort.signal);
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, 'listing the pods of this node failed; retrying in the background');
    }
    this.loop = this.run(abort.signal);
  }

  private async run(signal: AbortSignal): Promise<void> {
    let failures = 0;
    while (!signal.aborted) {
      try {
        if (!this.synced) await this.relist(signal);
        let gone = false;
        await this.api.watch(
          this.query(`&watch=1&allowWatchBookmarks=true&timeoutSeconds=300&resourceVersion=${encodeURIComponent(this.resourceVersion)}`),
          (ev) => {
            const pod = ev.object as V1Pod;
            const rv = pod.metadata?.resourceVersion;
            if (ev.type === 'ERROR') {
              // 410 Gone: our resourceVersion is too old; list again.
              gone = true;
              this.synced = false;
              return;
            }
            if (rv) this.resourceVersion = rv;
            const uid = pod.metadata?.uid;
            if (!uid || ev.type === 'BOOKMARK') return;
            if (ev.type === 'DELETED') this.byUid.delete(uid);
            else this.byUid.set(uid, pod);
          },
          signal,
        );
        if (gone) this.log.debug('pod watch expired (410); listing again');
        failures = 0;
      } catch (e) {
        if (signal.aborted) return;
        const status = (e as { status?: number }).status;
        if (status === 410) this.synced = false;
        failures++;
        const delay = Math.min(30_000, this.retryMs * 2 ** Math.min(failures - 1, 5)) * (0.5 + Math.random() / 2);
        this.log.warn({ err: (e as Error).message, retryMs: Math.round(delay) }, 'pod watch failed; retrying');
        await new Promise((r) => setTimeout(r, delay).unref());
        // After an error the stream may have missed events: list again.
        this.synced = false;
      }
    }
  }

  async stop(): Promise<void> {
    this.abort?.abort();
    await this.loop?.catch(() => undefined);
    this.abort = undefined;
    this.api.close();
  }

  get hasSynced(): boolean {
    return this.synced;
  }

  get(uid: string): V1Pod | undefined {
    return this.byUid.get(uid);
  }

  list(): V1Pod[] {
    return [...this.byUid.values()];
  }

  /** For the report collector: namespace, name and container names of a pod by UID. */
  readonly names: PodNames = (uid) => {
    const pod = this.byUid.get(uid);
    if (!pod) return undefined;
    return { namespace: pod.metadata?.namespace ?? '', name: pod.metadata?.name ?? '', containers: containerNamesById(pod) };
  };
}
