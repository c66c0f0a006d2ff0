/**
 * The pods of this node, kept current by an informer (list + watch with
 * fieldSelector spec.nodeName=<node>), as the kubelet would see them. The agent names pods
 * and containers in its reports with it, and the secrets socket reads a pod's declared
 * references from it. Pods are found by UID, containers by runtime container id.
 */
import { CoreV1Api, ListWatch, Watch, type Informer, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import type { Logger } from '../../../common/src/log.ts';
import type { PodNames } from '../report.ts';

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

export class NodePods {
  private readonly byUid = new Map<string, V1Pod>();
  private readonly informer: Informer<V1Pod>;
  private started = false;
  private synced = false;

  constructor(kc: KubeConfig, readonly nodeName: string, private readonly log: Logger) {
    const api = kc.makeApiClient(CoreV1Api);
    const selector = `spec.nodeName=${nodeName}`;
    // ListWatch (not makeInformer) because only it takes a field selector in client-node 1.x.
    this.informer = new ListWatch<V1Pod>('/api/v1/pods', new Watch(kc), () => api.listPodForAllNamespaces({ fieldSelector: selector }), false, undefined, selector);
    const upsert = (pod: V1Pod) => {
      const uid = pod.metadata?.uid;
      if (uid) this.byUid.set(uid, pod);
    };
    this.informer.on('add', upsert);
    this.informer.on('update', upsert);
    this.informer.on('delete', (pod) => {
      const uid = pod.metadata?.uid;
      if (uid) this.byUid.delete(uid);
    });
    this.informer.on('connect', () => {
      this.synced = true;
    });
    this.informer.on('error', (err: unknown) => {
      this.log.warn({ err: (err as Error)?.message ?? String(err) }, 'pod informer error; restarting in 2 s');
      if (this.started) setTimeout(() => void this.informer.start().catch(() => undefined), 2000).unref();
    });
  }

  async start(): Promise<void> {
    this.started = true;
    await this.informer.start();
  }

  async stop(): Promise<void> {
    this.started = false;
    await this.informer.stop();
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
