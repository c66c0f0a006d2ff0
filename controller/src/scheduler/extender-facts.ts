/**
 * What the extender knows about a node and the pod being placed, gathered per request from
 * the fleet registry (the agents' last NodeReports: real usage, PSI, the pods they see), the
 * cluster's objects when there is a cluster (allocatable, pods bound to each node with their
 * requests and workloads), telemetry (the pod's workload profile) and the placements the
 * extender itself remembers since each node's last report (anti-herding).
 */
import type { INodeReport } from '#proto/codec.js';

import type { FleetRegistry } from '../fleet/registry.ts';
import type { ClusterModel } from '../model/model.ts';
import { parseQuantity } from '../mutators/quantity.ts';
import type { Season as TelemetrySeason } from '../telemetry/seasons.ts';
import { deploymentOfReplicaSet } from '../telemetry/statistics.ts';
import { type PlacementMemory, ZERO_PLACED } from './extender-placements.ts';
import type { WireContainer, WireNode, WirePod } from './extender-wire.ts';
import type { NodeFacts, PodFacts, Resources, Season } from './score.ts';

/**
 * Bad-neighbour scores as the extender reads them: the same shape as `NeighbourLookup` in
 * neighbours.ts (owned by the neighbour scores), declared here so the extender does not wait on it.
 */
export interface NeighbourLookup {
  forPod(namespace: string, name: string): { worst: number } | undefined;
  forWorkload(namespace: string, kind: string, name: string): { worst: number } | undefined;
}

/** No neighbour scores (yet): every lookup is unknown. */
export const NO_NEIGHBOURS: NeighbourLookup = { forPod: () => undefined, forWorkload: () => undefined };

export const ZERO: Resources = Object.freeze({ cpuMillis: 0, memoryBytes: 0 });

/** A pod bound to a node, as the cluster's objects say. */
export interface BoundPod {
  namespace: string;
  name: string;
  uid?: string;
  /** `namespace/Kind/name` of its workload (Deployment above a ReplicaSet). */
  workload: string;
  requests: Resources;
}

/** The cluster's objects, as far as the extender needs them. */
export interface ClusterView {
  allocatable(node: string): Resources | undefined;
  /** The pods bound to the node, summed (requests, pods per workload). */
  residentsOn(node: string): Residents;
  /** The Deployment (or other controller) a ReplicaSet belongs to, when known. */
  replicaSetOwner?(namespace: string, replicaSet: string): { kind: string; name: string } | undefined;
}

/** Telemetry's view of a workload container: its expected usage in a season, when it has history. */
export interface UsageProfiles {
  season(): TelemetrySeason;
  predicted(namespace: string, owner: { kind: string; name: string }, container: string, season: Season): Resources | undefined;
}

function toResources(m: Record<string, unknown> | undefined): Resources {
  return { cpuMillis: Math.round((parseQuantity(m?.cpu) ?? 0) * 1000), memoryBytes: parseQuantity(m?.memory) ?? 0 };
}

function add(a: Resources, b: Resources): Resources {
  return { cpuMillis: a.cpuMillis + b.cpuMillis, memoryBytes: a.memoryBytes + b.memoryBytes };
}

/** A pod's effective requests: its containers' sum, or the largest init container when that is more. */
export function podRequests(pod: WirePod): Resources {
  const sum = (pod.spec?.containers ?? []).reduce<Resources>((acc, c) => add(acc, toResources(c.resources?.requests)), ZERO);
  let init = ZERO;
  for (const c of pod.spec?.initContainers ?? []) {
    const r = toResources(c.resources?.requests);
    init = { cpuMillis: Math.max(init.cpuMillis, r.cpuMillis), memoryBytes: Math.max(init.memoryBytes, r.memoryBytes) };
  }
  return { cpuMillis: Math.max(sum.cpuMillis, init.cpuMillis), memoryBytes: Math.max(sum.memoryBytes, init.memoryBytes) };
}

/** The pod's controlling owner as kube-scheduler sent it, followed from a ReplicaSet to its Deployment. */
export function workloadOfPod(pod: WirePod, cluster?: ClusterView): { namespace: string; kind: string; name: string } | undefined {
  const ns = pod.metadata?.namespace ?? 'default';
  const refs = pod.metadata?.ownerReferences ?? [];
  const ref = refs.find((r) => r.controller) ?? refs[0];
  if (!ref?.kind || !ref.name) return undefined;
  if (ref.kind === 'ReplicaSet') {
    const up = cluster?.replicaSetOwner?.(ns, ref.name);
    if (up) return { namespace: ns, ...up };
    const d = deploymentOfReplicaSet(ref.name);
    if (d) return { namespace: ns, kind: 'Deployment', name: d };
  }
  return { namespace: ns, kind: ref.kind, name: ref.name };
}

/**
 * The workload of a pod an agent reports, from its name alone (no cluster objects):
 * `<deployment>-<replicaset hash>-<suffix>` is a Deployment's pod.
 */
export function workloadFromPodName(namespace: string, name: string): string | undefined {
  const i = name.lastIndexOf('-');
  const d = i > 0 ? deploymentOfReplicaSet(name.slice(0, i)) : undefined;
  return d ? `${namespace}/Deployment/${d}` : undefined;
}

export const workloadKeyOf = (w: { namespace: string; kind: string; name: string }): string => `${w.namespace}/${w.kind}/${w.name}`;

export interface FactsSources {
  registry: FleetRegistry;
  placements: PlacementMemory;
  neighbours: NeighbourLookup;
  cluster?: ClusterView | undefined;
  profiles?: UsageProfiles | undefined;
  now: () => number;
}

/**
 * The incoming pod: requests, predicted usage (telemetry's profile, else its requests), its
 * workload's neighbour score. The prediction is always the PEAK one: a pod placed off-peak lives
 * into the peak, so its fit with headroom is judged on what it will use then
 * (docs/scheduler-scoring.md; the simulator feeds the same).
 */
export function podFacts(pod: WirePod, src: Pick<FactsSources, 'cluster' | 'profiles' | 'neighbours'>): PodFacts & { workload?: string; key: string } {
  const requests = podRequests(pod);
  const ns = pod.metadata?.namespace ?? 'default';
  const w = workloadOfPod(pod, src.cluster);
  let predicted = requests;
  if (w && src.profiles) {
    const per = (pod.spec?.containers ?? []).map((c: WireContainer) => src.profiles!.predicted(ns, w, c.name ?? '', 'peak'));
    // Only a complete profile replaces the requests: a container without history would count as zero.
    if (per.length > 0 && per.every((p) => p !== undefined)) predicted = per.reduce<Resources>((a, p) => add(a, p!), ZERO);
  }
  const score = (w && src.neighbours.forWorkload(w.namespace, w.kind, w.name)) ?? src.neighbours.forPod(ns, pod.metadata?.name ?? '');
  const key = `${ns}/${pod.metadata?.name ?? ''}`;
  return { requests, predicted, key, ...(score ? { neighbourWorst: score.worst } : {}), ...(w ? { workload: workloadKeyOf(w) } : {}) };
}

/**
 * What a node runs, summed once per report (or per index of the cluster's objects) rather than
 * per call: with 5,000 nodes of 30 pods a prioritize call would otherwise walk 150,000 pods.
 */
export interface Residents {
  requested: Resources;
  /** Pods per workload key. */
  workloads: Map<string, number>;
  pods: Array<{ namespace: string; name: string }>;
  /** The residents' `worst` neighbour scores, looked up at most once per NEIGHBOURS_TTL_MS. */
  neighbours?: { at: number; lookup: NeighbourLookup; worst: number[] };
}

/** Neighbour scores are refreshed asynchronously by the leader (minutes); a few seconds old is current. */
const NEIGHBOURS_TTL_MS = 5000;

const NONE: number[] = [];

function residentsWorst(residents: Residents, lookup: NeighbourLookup, now: number): number[] {
  if (lookup === NO_NEIGHBOURS) return NONE;
  const c = residents.neighbours;
  if (c && c.lookup === lookup && now - c.at < NEIGHBOURS_TTL_MS) return c.worst;
  const worst: number[] = [];
  for (const r of residents.pods) {
    const s = lookup.forPod(r.namespace, r.name);
    if (s) worst.push(s.worst);
  }
  residents.neighbours = { at: now, lookup, worst };
  return worst;
}

const reportResidents = new WeakMap<INodeReport, Residents>();

/** The pods an agent reports, their workloads read from their names (no cluster objects: no requests). */
function residentsOfReport(report: INodeReport): Residents {
  let r = reportResidents.get(report);
  if (r) return r;
  r = { requested: ZERO, workloads: new Map(), pods: [] };
  for (const p of report.pods ?? []) {
    if (!p.name || !p.namespace) continue;
    r.pods.push({ namespace: p.namespace, name: p.name });
    const w = workloadFromPodName(p.namespace, p.name);
    if (w) r.workloads.set(w, (r.workloads.get(w) ?? 0) + 1);
  }
  reportResidents.set(report, r);
  return r;
}

/** Sums bound pods into Residents. */
export function residentsOf(pods: readonly BoundPod[]): Residents {
  const r: Residents = { requested: ZERO, workloads: new Map(), pods: [] };
  let cpu = 0;
  let mem = 0;
  for (const p of pods) {
    cpu += p.requests.cpuMillis;
    mem += p.requests.memoryBytes;
    r.pods.push({ namespace: p.namespace, name: p.name });
    r.workloads.set(p.workload, (r.workloads.get(p.workload) ?? 0) + 1);
  }
  r.requested = { cpuMillis: cpu, memoryBytes: mem };
  return r;
}

const EMPTY: Residents = { requested: ZERO, workloads: new Map(), pods: [] };

/** What one report says, in the scorer's units; computed once per report. */
interface ReportFacts {
  usage: Resources | undefined;
  psi: NodeFacts['psi'];
  /** The agent's cores and memory, when nothing better says what is allocatable. */
  capacity: Resources;
}
const reportFacts = new WeakMap<INodeReport, ReportFacts>();
function factsOfReport(report: INodeReport): ReportFacts {
  let f = reportFacts.get(report);
  if (f) return f;
  const n = report.node;
  f = {
    usage: n ? { cpuMillis: Math.round((n.cpuUsageCores ?? 0) * 1000), memoryBytes: Number(n.memoryUsedBytes ?? 0) } : undefined,
    psi: n && (n.cpuPressure || n.memoryPressure) ? { cpuSome10: n.cpuPressure?.someAvg10 ?? 0, memorySome10: n.memoryPressure?.someAvg10 ?? 0 } : undefined,
    capacity: { cpuMillis: (n?.cpuCores ?? 0) * 1000, memoryBytes: Number(n?.memoryTotalBytes ?? 0) },
  };
  reportFacts.set(report, f);
  return f;
}

function allocatableOf(name: string, wire: WireNode | undefined, report: ReportFacts | undefined, cluster?: ClusterView): Resources {
  const fromCluster = cluster?.allocatable(name);
  if (fromCluster) return fromCluster;
  if (wire?.status?.allocatable) return toResources(wire.status.allocatable);
  return report?.capacity ?? ZERO;
}

/** One candidate node's facts; a node no agent has reported for has no usage (the score is neutral). */
export function nodeFacts(name: string, wire: WireNode | undefined, pod: { workload?: string; key?: string }, src: FactsSources): NodeFacts {
  const entry = src.registry.get(name);
  const report = entry?.report;
  const residents = src.cluster ? src.cluster.residentsOn(name) : report ? residentsOfReport(report) : EMPTY;
  const residentsNeighbourWorst = residentsWorst(residents, src.neighbours, src.now());
  const placed = src.placements.placedSince(name, entry?.lastReportAt, report, pod.key);
  const rf = report ? factsOfReport(report) : undefined;
  const reported = rf?.usage !== undefined && entry?.lastReportAt !== undefined;
  // One object shape for every node (absent facts are undefined): 5,000 of them per call.
  return {
    name,
    allocatable: allocatableOf(name, wire, rf, src.cluster),
    requested: placed.requests === ZERO_PLACED ? residents.requested : add(residents.requested, placed.requests),
    usage: reported ? rf!.usage : undefined,
    reportAgeMs: reported ? Math.max(0, src.now() - entry.lastReportAt!) : undefined,
    psi: reported ? rf!.psi : undefined,
    placedSinceReport: placed.predicted,
    familiars: (pod.workload === undefined ? 0 : (residents.workloads.get(pod.workload) ?? 0)) + placed.familiars(pod.workload),
    residentsNeighbourWorst,
  };
}

/**
 * The cluster model (informers) as a ClusterView. The index by node (150,000 pods in a
 * 5,000-node cluster) is rebuilt every `everyMs` off the request path, and on the first call;
 * a call between two rebuilds reads the last one (placements cover pods bound since).
 */
export function modelClusterView(model: ClusterModel, everyMs = 2000): ClusterView & { stop(): void } {
  let byNode: Map<string, Residents> | undefined;
  let alloc = new Map<string, Resources>();
  const rebuild = () => {
    const pods = new Map<string, BoundPod[]>();
    const allocatable = new Map<string, Resources>();
    for (const n of model.list('nodes')) allocatable.set(n.metadata?.name ?? '', toResources(n.status?.allocatable as Record<string, unknown> | undefined));
    for (const p of model.list('pods')) {
      const node = p.spec?.nodeName;
      const phase = p.status?.phase;
      if (typeof node !== 'string' || phase === 'Succeeded' || phase === 'Failed') continue;
      let list = pods.get(node);
      if (!list) pods.set(node, (list = []));
      list.push({
        namespace: p.metadata?.namespace ?? '',
        name: p.metadata?.name ?? '',
        workload: workloadKeyOf(model.workloadOf(p)),
        requests: podRequests(p as WirePod),
      });
    }
    alloc = allocatable;
    byNode = new Map([...pods].map(([node, list]) => [node, residentsOf(list)]));
  };
  const timer = setInterval(rebuild, everyMs);
  timer.unref();
  const index = () => byNode ?? (rebuild(), byNode!);
  return {
    allocatable: (node) => (index(), alloc.get(node)),
    residentsOn: (node) => index().get(node) ?? EMPTY,
    replicaSetOwner: (ns, rs) => model.replicaSetOwner(ns, rs),
    stop: () => clearInterval(timer),
  };
}
