// Generated diurnal history for telemetry tests and the bench: pods of a few workloads whose
// CPU is high on weekdays 09:00–17:00 UTC and low otherwise, memory following it, plus
// kube-state-metrics owner series. The expected statistics are computed here, independently
// of the controller, from the very sample values promtool backfills.
import type { SeriesSpec } from '../harness/openmetrics.ts';

export interface FixturePod {
  namespace: string;
  pod: string;
  container: string;
  workload: { kind: string; name: string };
  /** kube_pod_owner labels (absent: the owner is only known from the pod name). */
  owner?: { kind: string; name: string };
  /** Cores at off-peak / peak. */
  cpuLow: number;
  cpuHigh: number;
  memLow: number;
  memHigh: number;
  oom?: boolean;
  throttled?: boolean;
  /** kube_pod_container_resource_requests (cores, bytes). */
  requests?: { cpu: number; memory: number };
}

/** Generated peak: Monday–Friday 09:00–16:59 UTC (hour-of-week, Sunday 00:00 = 0). */
export const GENERATED_PEAK_HOURS: number[] = [1, 2, 3, 4, 5].flatMap((d) => Array.from({ length: 8 }, (_, i) => d * 24 + 9 + i));
const PEAK = new Set(GENERATED_PEAK_HOURS);

export function hourOfWeekOf(t: number): number {
  const d = new Date(t * 1000);
  return d.getUTCDay() * 24 + d.getUTCHours();
}
export function isPeak(t: number): boolean {
  return PEAK.has(hourOfWeekOf(t));
}

/** Deterministic noise in [0, 1). */
export function noise(seed: number, i: number): number {
  let x = (seed * 374761393 + i * 668265263) >>> 0;
  x = Math.imul(x ^ (x >>> 13), 1274126177) >>> 0;
  return ((x ^ (x >>> 16)) >>> 0) / 2 ** 32;
}

export interface History {
  start: number;
  end: number;
  step: number;
  pods: FixturePod[];
  /** Per pod: CPU counter and memory gauge at start + i·step. */
  counters: number[][];
  memory: number[][];
}

export function generateHistory(pods: FixturePod[], start: number, end: number, step: number): History {
  const n = Math.floor((end - start) / step) + 1;
  const counters: number[][] = [];
  const memory: number[][] = [];
  pods.forEach((p, k) => {
    const c = new Array<number>(n);
    const m = new Array<number>(n);
    let acc = 0;
    for (let i = 0; i < n; i++) {
      const t = start + i * step;
      const peak = isPeak(t);
      const u = (peak ? p.cpuHigh : p.cpuLow) * (0.8 + 0.4 * noise(k + 1, i));
      if (i > 0) acc += u * step;
      c[i] = acc;
      m[i] = Math.round((peak ? p.memHigh : p.memLow) * (0.9 + 0.2 * noise(k + 1001, i)));
    }
    counters.push(c);
    memory.push(m);
  });
  return { start, end, step, pods, counters, memory };
}

export function seriesOf(h: History, ownerFrom: number): SeriesSpec[] {
  const out: SeriesSpec[] = [];
  const idx = (t: number) => Math.round((t - h.start) / h.step);
  h.pods.forEach((p, k) => {
    const labels = { namespace: p.namespace, pod: p.pod, container: p.container, id: `/kubepods/${p.pod}/${p.container}`, image: 'example/app:1' };
    out.push({
      name: 'container_cpu_usage_seconds_total',
      type: 'counter',
      labels,
      start: h.start,
      end: h.end,
      stepSeconds: h.step,
      value: (t) => h.counters[k]![idx(t)]!,
    });
    out.push({ name: 'container_memory_working_set_bytes', labels, start: h.start, end: h.end, stepSeconds: h.step, value: (t) => h.memory[k]![idx(t)]! });
    if (p.throttled) {
      out.push({
        name: 'container_cpu_cfs_throttled_periods_total',
        type: 'counter',
        labels,
        start: h.start,
        end: h.end,
        stepSeconds: h.step,
        value: (t) => idx(t) * 10,
      });
      out.push({
        name: 'container_cpu_cfs_periods_total',
        type: 'counter',
        labels,
        start: h.start,
        end: h.end,
        stepSeconds: h.step,
        value: (t) => idx(t) * 100,
      });
    }
    if (p.oom) {
      const l = { namespace: p.namespace, pod: p.pod, container: p.container, reason: 'OOMKilled' };
      out.push({
        name: 'kube_pod_container_status_last_terminated_reason',
        labels: l,
        start: h.end - 86400,
        end: h.end - 86400 + 3600,
        stepSeconds: 60,
        value: () => 1,
      });
    }
    if (p.requests) {
      for (const [resource, unit, v] of [
        ['cpu', 'core', p.requests.cpu],
        ['memory', 'byte', p.requests.memory],
      ] as const) {
        out.push({
          name: 'kube_pod_container_resource_requests',
          labels: { namespace: p.namespace, pod: p.pod, container: p.container, resource, unit },
          start: ownerFrom,
          end: h.end,
          stepSeconds: 60,
          value: () => v,
        });
      }
    }
    if (p.owner) {
      out.push({
        name: 'kube_pod_owner',
        labels: { namespace: p.namespace, pod: p.pod, owner_kind: p.owner.kind, owner_name: p.owner.name, owner_is_controller: 'true' },
        start: ownerFrom,
        end: h.end,
        stepSeconds: 60,
        value: () => 1,
      });
    }
  });
  const rs = new Map<string, FixturePod>();
  for (const p of h.pods) if (p.owner?.kind === 'ReplicaSet') rs.set(`${p.namespace}/${p.owner.name}`, p);
  for (const p of rs.values()) {
    out.push({
      name: 'kube_replicaset_owner',
      labels: { namespace: p.namespace, replicaset: p.owner!.name, owner_kind: p.workload.kind, owner_name: p.workload.name, owner_is_controller: 'true' },
      start: ownerFrom,
      end: h.end,
      stepSeconds: 60,
      value: () => 1,
    });
  }
  return out;
}

/** The series manifests/prometheus-rules.yaml would have recorded (every step, rate over `rate` seconds). */
export function recordedSeriesOf(h: History, rate: number): SeriesSpec[] {
  const lag = rate / h.step;
  const idx = (t: number) => Math.round((t - h.start) / h.step);
  const first = h.start + rate;
  const cpu = (k: number, t: number) => (h.counters[k]![idx(t)]! - h.counters[k]![idx(t) - lag]!) / rate;
  const out: SeriesSpec[] = h.pods.flatMap((p, k) => {
    const labels = { namespace: p.namespace, pod: p.pod, container: p.container };
    return [
      { name: 'namespace_pod_container:nemutator_cpu_usage:rate5m', labels, start: first, end: h.end, stepSeconds: h.step, value: (t: number) => cpu(k, t) },
      {
        name: 'namespace_pod_container:nemutator_memory_working_set_bytes:max',
        labels,
        start: first,
        end: h.end,
        stepSeconds: h.step,
        value: (t: number) => h.memory[k]![idx(t)]!,
      },
    ];
  });
  out.push({
    name: 'nemutator:cluster_cpu_usage:rate5m',
    labels: {},
    start: first,
    end: h.end,
    stepSeconds: h.step,
    value: (t) => h.pods.reduce((sum, _, k) => sum + cpu(k, t), 0),
  });
  return out;
}

/** Prometheus' quantile: linear interpolation between closest ranks (rank = q·(n−1)). */
export function quantile(q: number, values: number[]): number {
  const v = [...values].sort((a, b) => a - b);
  const rank = q * (v.length - 1);
  const lo = Math.max(0, Math.floor(rank));
  const hi = Math.min(v.length - 1, lo + 1);
  const w = rank - Math.floor(rank);
  return v[lo]! * (1 - w) + v[hi]! * w;
}

export interface Expected {
  cpu: { min: number; avg: number; max: number; p50: number; p90: number; p95: number; p99: number };
  memory: { min: number; avg: number; max: number };
  season: (q: number, peak: boolean) => number;
  /** CPU rate at each subquery point of the window, with its time. */
  rates: Array<[number, number]>;
}

/**
 * What the controller should report for pod k at `at` over `window` seconds with a `step`
 * subquery and `rate` seconds rate() — Prometheus 2.x semantics: range selectors and
 * subqueries include both ends; with samples exactly on the boundaries rate() does not
 * extrapolate, so rate(t) = (c(t) − c(t − rate)) / rate. The CPU average is the increase
 * over the whole window ÷ window.
 */
export function expected(h: History, k: number, at: number, window: number, step: number, rate: number): Expected {
  const rates: Array<[number, number]> = [];
  const mems: number[] = [];
  const first = Math.ceil((at - window) / step) * step;
  for (let t = first; t <= at; t += step) {
    const i = (t - h.start) / h.step;
    const j = (t - rate - h.start) / h.step;
    if (j < 0) continue;
    rates.push([t, (h.counters[k]![i]! - h.counters[k]![j]!) / rate]);
    mems.push(h.memory[k]![i]!);
  }
  const r = rates.map(([, v]) => v);
  const avg = (a: number[]) => a.reduce((s, x) => s + x, 0) / a.length;
  return {
    cpu: {
      min: Math.min(...r),
      avg: (h.counters[k]![(at - h.start) / h.step]! - h.counters[k]![(at - window - h.start) / h.step]!) / window,
      max: Math.max(...r),
      p50: quantile(0.5, r),
      p90: quantile(0.9, r),
      p95: quantile(0.95, r),
      p99: quantile(0.99, r),
    },
    memory: { min: Math.min(...mems), avg: avg(mems), max: Math.max(...mems) },
    season: (q, peak) =>
      quantile(
        q,
        rates.filter(([t]) => isPeak(t) === peak).map(([, v]) => v),
      ),
    rates,
  };
}

const Mi = 2 ** 20;

/** Dozens of pods: Deployments (owner known and by name only), a StatefulSet, a DaemonSet, an OOM-killed and a throttled container. */
export function standardPods(): FixturePod[] {
  const pods: FixturePod[] = [];
  const dep = (
    ns: string,
    name: string,
    rs: string,
    n: number,
    cpuLow: number,
    cpuHigh: number,
    memLow: number,
    memHigh: number,
    withOwner: boolean,
    extra: Partial<FixturePod> = {},
  ) => {
    const ids = ['x2kqz', 'b7n4m', 'q9wlr', 'h5tcd', 'z8vkp', 'm3jxg'];
    for (let i = 0; i < n; i++) {
      pods.push({
        namespace: ns,
        pod: `${name}-${rs}-${ids[i]}`,
        container: 'app',
        workload: { kind: 'Deployment', name },
        ...(withOwner ? { owner: { kind: 'ReplicaSet', name: `${name}-${rs}` } } : {}),
        cpuLow: cpuLow * (1 + i * 0.1),
        cpuHigh: cpuHigh * (1 + i * 0.1),
        memLow: memLow * Mi,
        memHigh: memHigh * Mi,
        ...(i === 0 ? extra : {}),
      });
    }
  };
  dep('shop', 'web', '7d4b9c8f5', 6, 0.05, 0.4, 100, 180, true, { throttled: true });
  for (const p of pods) p.requests = { cpu: 1, memory: 512 * Mi };
  dep('shop', 'api', '5c8d7b6f4', 6, 0.1, 0.8, 200, 300, false, { oom: true });
  dep('batch', 'worker', '6f7b8c9d2', 6, 0.3, 0.5, 400, 420, true);
  for (let i = 0; i < 2; i++)
    pods.push({
      namespace: 'shop',
      pod: `db-${i}`,
      container: 'postgres',
      workload: { kind: 'StatefulSet', name: 'db' },
      owner: { kind: 'StatefulSet', name: 'db' },
      cpuLow: 0.2,
      cpuHigh: 0.6,
      memLow: 800 * Mi,
      memHigh: 900 * Mi,
    });
  for (const id of ['4kd2x', 'p7r2w', 'n8c4v', 't2z6b'])
    pods.push({
      namespace: 'monitoring',
      pod: `node-agent-${id}`,
      container: 'agent',
      workload: { kind: 'DaemonSet', name: 'node-agent' },
      owner: { kind: 'DaemonSet', name: 'node-agent' },
      cpuLow: 0.02,
      cpuHigh: 0.03,
      memLow: 50 * Mi,
      memHigh: 52 * Mi,
    });
  return pods;
}
