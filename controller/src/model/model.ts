/**
 * The cluster model (the seed's "scraper"): informers for nodes, pods, replicasets,
 * deployments, statefulsets and daemonsets, linked by owner references (Pod → ReplicaSet →
 * Deployment, Pod → StatefulSet / DaemonSet), with requests, limits and, when telemetry has
 * a snapshot, usage. Objects are kept as they arrive; the links are computed when the model
 * is read, so an update of one object never loses what others say.
 */
import { AppsV1Api, CoreV1Api, type Informer, type KubeConfig, type KubernetesObject, makeInformer, type ObjectCache } from '@kubernetes/client-node';

import type { Logger } from '#common/log.js';

import { parseQuantity } from '../mutators/quantity.ts';
import type { Snapshot, WorkloadRef } from '../telemetry/statistics.ts';

type Obj = KubernetesObject & { spec?: Record<string, unknown>; status?: Record<string, unknown> };

export const MODEL_KINDS = ['nodes', 'pods', 'replicasets', 'deployments', 'statefulsets', 'daemonsets'] as const;
export type ModelKind = (typeof MODEL_KINDS)[number];

export interface ContainerModel {
  name: string;
  requests: { cpu?: number; memory?: number };
  limits: { cpu?: number; memory?: number };
  usage?: { cpu: { avg: number; max: number; p95: number }; memory: { avg: number; max: number } };
}

export interface PodModel {
  namespace: string;
  name: string;
  uid?: string;
  node?: string;
  phase?: string;
  workload: WorkloadRef;
  owners: Array<{ kind: string; name: string }>;
  containers: ContainerModel[];
}

export interface WorkloadModel extends WorkloadRef {
  replicaSets: string[];
  pods: string[];
  requests: { cpu: number; memory: number };
  usage?: { cpuAvg: number; memoryAvg: number };
}

export interface NodeModel {
  name: string;
  allocatable: { cpu?: number; memory?: number };
  pods: number;
  requests: { cpu: number; memory: number };
  usage?: { cpuAvg: number; memoryAvg: number };
}

export interface ClusterModelView {
  generatedAt: string;
  counts: Record<ModelKind, number>;
  nodes: NodeModel[];
  workloads: WorkloadModel[];
  pods: PodModel[];
}

function controllerRef(o: Obj): { kind: string; name: string } | undefined {
  const refs = o.metadata?.ownerReferences ?? [];
  const r = refs.find((x) => x.controller) ?? refs[0];
  return r ? { kind: r.kind, name: r.name } : undefined;
}

function quantities(m: unknown): { cpu?: number; memory?: number } {
  const r = (m ?? {}) as Record<string, string>;
  const out: { cpu?: number; memory?: number } = {};
  const cpu = parseQuantity(r.cpu);
  const memory = parseQuantity(r.memory);
  if (cpu !== undefined) out.cpu = cpu;
  if (memory !== undefined) out.memory = memory;
  return out;
}

export class ClusterModel {
  private readonly caches = new Map<ModelKind, ObjectCache<Obj> & Informer<Obj>>();
  private started = false;

  constructor(
    private readonly kc: KubeConfig,
    private readonly log: Logger,
  ) {}

  /** Lists everything once and keeps watching; resolves when every cache is filled. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    const core = this.kc.makeApiClient(CoreV1Api);
    const apps = this.kc.makeApiClient(AppsV1Api);
    const lists: Record<ModelKind, [string, () => Promise<{ items: Obj[] }>]> = {
      nodes: ['/api/v1/nodes', () => core.listNode() as never],
      pods: ['/api/v1/pods', () => core.listPodForAllNamespaces() as never],
      replicasets: ['/apis/apps/v1/replicasets', () => apps.listReplicaSetForAllNamespaces() as never],
      deployments: ['/apis/apps/v1/deployments', () => apps.listDeploymentForAllNamespaces() as never],
      statefulsets: ['/apis/apps/v1/statefulsets', () => apps.listStatefulSetForAllNamespaces() as never],
      daemonsets: ['/apis/apps/v1/daemonsets', () => apps.listDaemonSetForAllNamespaces() as never],
    };
    await Promise.all(
      MODEL_KINDS.map(async (kind) => {
        const [path, list] = lists[kind];
        const informer = makeInformer<Obj>(this.kc, path, list as never);
        informer.on('error', (err) => {
          this.log.warn({ kind, err: (err as Error)?.message ?? err }, 'cluster model watch failed; restarting it in 5 s');
          setTimeout(() => void informer.start().catch(() => undefined), 5000).unref();
        });
        this.caches.set(kind, informer);
        await informer.start();
      }),
    );
  }

  async stop(): Promise<void> {
    await Promise.all([...this.caches.values()].map((i) => i.stop().catch(() => undefined)));
    this.caches.clear();
    this.started = false;
  }

  list(kind: ModelKind): readonly Obj[] {
    return this.caches.get(kind)?.list() ?? [];
  }

  private get(kind: ModelKind, namespace: string, name: string): Obj | undefined {
    return this.caches.get(kind)?.get(name, namespace);
  }

  /** Owner chain of a pod, top first is last: [ReplicaSet, Deployment]. */
  ownersOf(pod: Obj): Array<{ kind: string; name: string }> {
    const ns = pod.metadata?.namespace ?? '';
    const chain: Array<{ kind: string; name: string }> = [];
    let ref = controllerRef(pod);
    while (ref && chain.length < 4) {
      chain.push(ref);
      const kind = ref.kind === 'ReplicaSet' ? 'replicasets' : undefined;
      const next = kind ? this.get(kind, ns, ref.name) : undefined;
      ref = next ? controllerRef(next) : undefined;
    }
    return chain;
  }

  workloadOf(pod: Obj): WorkloadRef {
    const ns = pod.metadata?.namespace ?? '';
    const top = this.ownersOf(pod).at(-1);
    return top ? { namespace: ns, kind: top.kind, name: top.name } : { namespace: ns, kind: 'Pod', name: pod.metadata?.name ?? '' };
  }

  /** For telemetry: owner of a live pod (undefined for pods the cluster no longer has). */
  ownerLookup = (namespace: string, name: string): WorkloadRef | undefined => {
    const pod = this.get('pods', namespace, name);
    return pod ? this.workloadOf(pod) : undefined;
  };

  /** The controller of a ReplicaSet (its Deployment). */
  replicaSetOwner = (namespace: string, name: string): { kind: string; name: string } | undefined => {
    const rs = this.get('replicasets', namespace, name);
    return rs ? controllerRef(rs) : undefined;
  };

  pod(namespace: string, name: string): Obj | undefined {
    return this.get('pods', namespace, name);
  }

  /** The linked model, with usage from a telemetry snapshot when there is one. */
  view(snapshot?: Snapshot): ClusterModelView {
    const usage = new Map((snapshot?.containers ?? []).map((c) => [`${c.namespace}/${c.pod}/${c.container}`, c]));
    const pods = this.list('pods').map((p) => this.podModel(p, usage));
    const workloads = this.workloadIndex();
    const nodes = new Map<string, NodeModel>(
      this.list('nodes').map((n) => [
        n.metadata?.name ?? '',
        { name: n.metadata?.name ?? '', allocatable: quantities(n.status?.allocatable), pods: 0, requests: { cpu: 0, memory: 0 } },
      ]),
    );
    for (const p of pods) {
      const w = workloads.add(p.workload);
      w.pods.push(p.name);
      const node = p.node ? nodes.get(p.node) : undefined;
      if (node) node.pods++;
      for (const c of p.containers) for (const target of node ? [w, node] : [w]) addContainer(target, c);
    }
    return {
      generatedAt: new Date().toISOString(),
      counts: Object.fromEntries(MODEL_KINDS.map((k) => [k, this.list(k).length])) as Record<ModelKind, number>,
      nodes: [...nodes.values()],
      workloads: [...workloads.all()],
      pods,
    };
  }

  private podModel(p: Obj, usage: Map<string, Snapshot['containers'][number]>): PodModel {
    const ns = p.metadata?.namespace ?? '';
    const name = p.metadata?.name ?? '';
    const specs = (p.spec?.containers ?? []) as Array<{ name: string; resources?: { requests?: unknown; limits?: unknown } }>;
    const containers = specs.map((c): ContainerModel => {
      const u = usage.get(`${ns}/${name}/${c.name}`);
      return {
        name: c.name,
        requests: quantities(c.resources?.requests),
        limits: quantities(c.resources?.limits),
        ...(u ? { usage: { cpu: { avg: u.cpu.avg, max: u.cpu.max, p95: u.cpu.p95 }, memory: { avg: u.memory.avg, max: u.memory.max } } } : {}),
      };
    });
    return {
      namespace: ns,
      name,
      ...(p.metadata?.uid ? { uid: p.metadata.uid } : {}),
      ...(typeof p.spec?.nodeName === 'string' ? { node: p.spec.nodeName } : {}),
      ...(typeof p.status?.phase === 'string' ? { phase: p.status.phase } : {}),
      workload: this.workloadOf(p),
      owners: this.ownersOf(p),
      containers,
    };
  }

  /** Every workload controller, with its Deployments' ReplicaSets; pods' own workloads are added as they come. */
  private workloadIndex(): { add(ref: WorkloadRef): WorkloadModel; all(): Iterable<WorkloadModel> } {
    const workloads = new Map<string, WorkloadModel>();
    const add = (ref: WorkloadRef): WorkloadModel => {
      const k = `${ref.namespace}/${ref.kind}/${ref.name}`;
      let w = workloads.get(k);
      if (!w) workloads.set(k, (w = { ...ref, replicaSets: [], pods: [], requests: { cpu: 0, memory: 0 } }));
      return w;
    };
    for (const [kind, label] of [
      ['deployments', 'Deployment'],
      ['statefulsets', 'StatefulSet'],
      ['daemonsets', 'DaemonSet'],
    ] as const) {
      for (const o of this.list(kind)) add({ namespace: o.metadata?.namespace ?? '', kind: label, name: o.metadata?.name ?? '' });
    }
    for (const rs of this.list('replicasets')) {
      const owner = controllerRef(rs);
      if (owner?.kind === 'Deployment')
        add({ namespace: rs.metadata?.namespace ?? '', kind: 'Deployment', name: owner.name }).replicaSets.push(rs.metadata?.name ?? '');
    }
    return { add, all: () => workloads.values() };
  }
}

/** Adds a container's requests (and usage, when known) to its workload's or node's totals. */
function addContainer(target: WorkloadModel | NodeModel, c: ContainerModel): void {
  target.requests.cpu += c.requests.cpu ?? 0;
  target.requests.memory += c.requests.memory ?? 0;
  if (!c.usage) return;
  target.usage ??= { cpuAvg: 0, memoryAvg: 0 };
  target.usage.cpuAvg += c.usage.cpu.avg;
  target.usage.memoryAvg += c.usage.memory.avg;
}
