/**
 * Statistics per container and per workload, from a fixed set of batched queries (see
 * queries.ts): CPU min/avg/max and p50/p90/p95/p99 of the rate over the window, the CPU
 * quantile of each season, memory working set min/avg/max, OOM kills, CPU throttling.
 *
 * Workload statistics pool the pods of a workload (owner chain Pod → ReplicaSet →
 * Deployment, or StatefulSet / DaemonSet / Job / bare pod), per container name: min of
 * mins, mean of averages, max of maxima, and the max of the pods' quantiles (a
 * conservative bound on the pooled quantile, exact when the pods behave alike).
 */
import type { PrometheusClient } from './prometheus.ts';
import { clusterCpu, ownerQueries, type QueryWindow, seasonCpuQuantile, statisticQueries } from './queries.ts';
import { type Brainset, classifyHours, hourOfWeekProfile, type Season, type SeasonSchedule } from './seasons.ts';

export interface CpuStats {
  min: number;
  avg: number;
  max: number;
  p50: number;
  p90: number;
  p95: number;
  p99: number;
}

export interface MemoryStats {
  min: number;
  avg: number;
  max: number;
}

export interface Stats {
  /** Cores. */
  cpu: CpuStats;
  /** Bytes. */
  memory: MemoryStats;
  /** CPU at each season's brainset quantile, cores (absent: no usage in that season). */
  seasonCpu: Partial<Record<Season, number>>;
  oomKilled: boolean;
  /** Fraction of CFS periods throttled over the window; null without cfs metrics. */
  throttling: number | null;
  /** History with data, seconds. */
  historySeconds: number;
}

export interface ContainerStats extends Stats {
  namespace: string;
  pod: string;
  container: string;
}

export interface WorkloadRef {
  namespace: string;
  kind: string;
  name: string;
}

export interface WorkloadStats extends Stats {
  workload: WorkloadRef;
  container: string;
  pods: number;
}

export interface Snapshot {
  /** Evaluation time, unix seconds. */
  at: number;
  window: QueryWindow;
  schedule: SeasonSchedule;
  containers: ContainerStats[];
  workloads: WorkloadStats[];
  /** Queries this snapshot cost. */
  queries: number;
  durationMs: number;
  /** Who owns each pod, as resolved for this snapshot (not serialized). */
  owners?: OwnerLookup;
}

/** Who owns a pod, when the cluster model knows; else kube_pod_owner, else the pod's name. */
export type OwnerLookup = (namespace: string, pod: string) => WorkloadRef | undefined;

export function workloadKey(w: WorkloadRef, container: string): string {
  return `${w.namespace}/${w.kind}/${w.name}/${container}`;
}

const key = (l: Record<string, string>) => `${l.namespace}/${l.pod}/${l.container}`;

/** kube-controller-manager's pod-template-hash alphabet (rand.SafeEncodeString). */
const HASH = /^[bcdfghjklmnpqrstvwxz2456789]{1,10}$/;

/** Workload from names alone: `web-7d4b9c8f5-x2kqz` → Deployment web, `db-0` → StatefulSet db. */
export function ownerFromPodName(namespace: string, pod: string): WorkloadRef {
  const parts = pod.split('-');
  if (parts.length >= 3 && HASH.test(parts[parts.length - 2]!) && /^[a-z0-9]{5}$/.test(parts[parts.length - 1]!)) {
    return { namespace, kind: 'Deployment', name: parts.slice(0, -2).join('-') };
  }
  if (parts.length >= 2 && /^\d+$/.test(parts[parts.length - 1]!)) return { namespace, kind: 'StatefulSet', name: parts.slice(0, -1).join('-') };
  return { namespace, kind: 'Pod', name: pod };
}

/** ReplicaSet name → Deployment name, by stripping a pod-template-hash suffix. */
export function deploymentOfReplicaSet(rs: string): string | undefined {
  const i = rs.lastIndexOf('-');
  return i > 0 && HASH.test(rs.slice(i + 1)) ? rs.slice(0, i) : undefined;
}

export interface CollectOptions {
  window: QueryWindow;
  /** Evaluation time, unix seconds (default now). */
  at?: number;
  brainsets: Record<Season, Brainset>;
  peakThreshold: number;
  /** May still be loading (the cluster model's first list): it is awaited only after the queries. */
  owners?: OwnerLookup | Promise<OwnerLookup | undefined>;
  /** Queries in flight at once. */
  concurrency?: number;
}

async function pool<T>(tasks: Array<() => Promise<T>>, n: number): Promise<T[]> {
  const out = new Array<T>(tasks.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, tasks.length) }, async () => {
      while (next < tasks.length) {
        const i = next++;
        out[i] = await tasks[i]!();
      }
    }),
  );
  return out;
}

/** The hour-of-week profile of cluster CPU and its peak/off-peak classification (one range query). */
export async function collectSchedule(prom: PrometheusClient, window: QueryWindow, at: number, peakThreshold: number): Promise<SeasonSchedule> {
  // ≤ 11,000 points per series is Prometheus' limit for a range query.
  const step = Math.max(window.stepSeconds, Math.ceil(window.windowSeconds / 10_000));
  const series = await prom.queryRange(clusterCpu(window), at - window.windowSeconds, at, step);
  return classifyHours(hourOfWeekProfile(series[0]?.points ?? []), peakThreshold);
}

export async function collectSnapshot(prom: PrometheusClient, opts: CollectOptions): Promise<Snapshot> {
  const started = Date.now();
  const before = prom.queries;
  const at = opts.at ?? Math.floor(Date.now() / 1000);
  const w = opts.window;
  const schedule = await collectSchedule(prom, w, at, opts.peakThreshold);

  const names = Object.keys(statisticQueries) as Array<keyof typeof statisticQueries>;
  const tasks: Array<() => Promise<Array<{ labels: Record<string, string>; value: number }>>> = names.map((n) => () => prom.query(statisticQueries[n](w), at));
  const seasons: Season[] = ['peak', 'off-peak'];
  for (const s of seasons) {
    const hours = s === 'peak' ? schedule.peakHours : schedule.offPeakHours;
    tasks.push(() => (hours.length === 0 ? Promise.resolve([]) : prom.query(seasonCpuQuantile(w, opts.brainsets[s].cpuPercentile, hours), at)));
  }
  tasks.push(() => prom.query(ownerQueries.pods(), at));
  tasks.push(() => prom.query(ownerQueries.replicaSets(), at));
  const results = await pool(tasks, opts.concurrency ?? 4);

  const byName = new Map<string, Map<string, number>>();
  names.forEach((n, i) => byName.set(n, new Map(results[i]!.map((s) => [key(s.labels), s.value]))));
  const seasonMaps = seasons.map((_, i) => new Map(results[names.length + i]!.map((s) => [key(s.labels), s.value])));
  const podOwners = results[names.length + 2]!;
  const rsOwners = results[names.length + 3]!;

  const containers: ContainerStats[] = [];
  const get = (n: keyof typeof statisticQueries, k: string) => byName.get(n)!.get(k);
  const labelsOf = new Map<string, Record<string, string>>();
  for (const n of ['cpuAvg', 'memMax'] as const) for (const s of results[names.indexOf(n)]!) labelsOf.set(key(s.labels), s.labels);
  for (const [k, l] of labelsOf) {
    const num = (n: keyof typeof statisticQueries) => {
      const v = get(n, k);
      return v === undefined || !Number.isFinite(v) ? 0 : v;
    };
    const seasonCpu: Partial<Record<Season, number>> = {};
    seasons.forEach((s, i) => {
      const v = seasonMaps[i]!.get(k);
      if (v !== undefined && Number.isFinite(v)) seasonCpu[s] = v;
    });
    const thr = get('throttling', k);
    containers.push({
      namespace: l.namespace ?? '',
      pod: l.pod ?? '',
      container: l.container ?? '',
      cpu: { min: num('cpuMin'), avg: num('cpuAvg'), max: num('cpuMax'), p50: num('cpuP50'), p90: num('cpuP90'), p95: num('cpuP95'), p99: num('cpuP99') },
      memory: { min: num('memMin'), avg: num('memAvg'), max: num('memMax') },
      seasonCpu,
      oomKilled: num('oomKilled') > 0,
      throttling: thr === undefined || !Number.isFinite(thr) ? null : thr,
      historySeconds: num('cpuSamples') * w.stepSeconds,
    });
  }
  const ck = (c: ContainerStats) => `${c.namespace}/${c.pod}/${c.container}`;
  containers.sort((a, b) => ck(a).localeCompare(ck(b)));

  const owners = resolveOwners(podOwners, rsOwners, await opts.owners);
  const workloads = aggregateWorkloads(containers, owners);
  const snapshot: Snapshot = { at, window: w, schedule, containers, workloads, queries: prom.queries - before, durationMs: Date.now() - started };
  Object.defineProperty(snapshot, 'owners', { value: owners, enumerable: false });
  return snapshot;
}

/** Owner of each pod: the model first, then kube_pod_owner (+ kube_replicaset_owner), then names. */
export function resolveOwners(
  podOwners: ReadonlyArray<{ labels: Record<string, string> }>,
  rsOwners: ReadonlyArray<{ labels: Record<string, string> }>,
  model?: OwnerLookup,
): OwnerLookup {
  const rs = new Map(rsOwners.map((s) => [`${s.labels.namespace}/${s.labels.replicaset}`, s.labels]));
  const pods = new Map(
    podOwners.filter((s) => s.labels.owner_kind && s.labels.owner_kind !== '<none>').map((s) => [`${s.labels.namespace}/${s.labels.pod}`, s.labels]),
  );
  return (namespace, pod) => {
    const fromModel = model?.(namespace, pod);
    if (fromModel) return fromModel;
    const o = pods.get(`${namespace}/${pod}`);
    if (!o) return ownerFromPodName(namespace, pod);
    if (o.owner_kind === 'ReplicaSet') {
      const up = rs.get(`${namespace}/${o.owner_name}`);
      if (up?.owner_kind && up.owner_kind !== '<none>') return { namespace, kind: up.owner_kind, name: up.owner_name ?? '' };
      const d = deploymentOfReplicaSet(o.owner_name ?? '');
      return d ? { namespace, kind: 'Deployment', name: d } : { namespace, kind: 'ReplicaSet', name: o.owner_name ?? '' };
    }
    return { namespace, kind: o.owner_kind ?? 'Pod', name: o.owner_name ?? pod };
  };
}

export function aggregateWorkloads(containers: readonly ContainerStats[], owners: OwnerLookup): WorkloadStats[] {
  const groups = new Map<string, { workload: WorkloadRef; container: string; items: ContainerStats[] }>();
  for (const c of containers) {
    const workload = owners(c.namespace, c.pod) ?? ownerFromPodName(c.namespace, c.pod);
    const k = workloadKey(workload, c.container);
    const g = groups.get(k) ?? { workload, container: c.container, items: [] };
    g.items.push(c);
    groups.set(k, g);
  }
  const out: WorkloadStats[] = [];
  for (const { workload, container, items } of groups.values()) {
    const max = (f: (c: ContainerStats) => number) => Math.max(...items.map(f));
    const min = (f: (c: ContainerStats) => number) => Math.min(...items.map(f));
    const mean = (f: (c: ContainerStats) => number) => items.reduce((s, c) => s + f(c), 0) / items.length;
    const seasonCpu: Partial<Record<Season, number>> = {};
    for (const s of ['peak', 'off-peak'] as const) {
      const vals = items.flatMap((c) => (c.seasonCpu[s] === undefined ? [] : [c.seasonCpu[s]!]));
      if (vals.length > 0) seasonCpu[s] = Math.max(...vals);
    }
    const thr = items.flatMap((c) => (c.throttling === null ? [] : [c.throttling]));
    out.push({
      workload,
      container,
      pods: items.length,
      cpu: {
        min: min((c) => c.cpu.min),
        avg: mean((c) => c.cpu.avg),
        max: max((c) => c.cpu.max),
        p50: max((c) => c.cpu.p50),
        p90: max((c) => c.cpu.p90),
        p95: max((c) => c.cpu.p95),
        p99: max((c) => c.cpu.p99),
      },
      memory: { min: min((c) => c.memory.min), avg: mean((c) => c.memory.avg), max: max((c) => c.memory.max) },
      seasonCpu,
      oomKilled: items.some((c) => c.oomKilled),
      throttling: thr.length > 0 ? Math.max(...thr) : null,
      historySeconds: max((c) => c.historySeconds),
    });
  }
  return out.sort((a, b) => workloadKey(a.workload, a.container).localeCompare(workloadKey(b.workload, b.container)));
}
