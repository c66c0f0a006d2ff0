/**
 * The PromQL the telemetry refresh issues. Every query aggregates `by (namespace, pod,
 * container)` over all containers at once: the number of queries is fixed, whatever the
 * number of pods. Metric names are the ones cAdvisor and kube-state-metrics export.
 */

export interface QueryWindow {
  /** History considered, seconds (e.g. 7d). */
  windowSeconds: number;
  /** Subquery resolution, seconds (e.g. 1m). */
  stepSeconds: number;
  /** Range of `rate()`, seconds (e.g. 5m); at least two scrape intervals. */
  rateSeconds: number;
  /** Read the series of manifests/prometheus-rules.yaml instead of computing rate() in subqueries. */
  recorded?: boolean;
}

/** The recording rules of manifests/prometheus-rules.yaml (a test keeps the two in step). */
export const RECORDED = {
  cpu: 'namespace_pod_container:nemutator_cpu_usage:rate5m',
  memory: 'namespace_pod_container:nemutator_memory_working_set_bytes:max',
  clusterCpu: 'nemutator:cluster_cpu_usage:rate5m',
  throttling: 'namespace_pod_container:nemutator_cpu_throttled:ratio_rate5m',
} as const;

export const BY = 'namespace, pod, container';
/** Real containers only: cAdvisor also exports the pod cgroup (container="") and the pause container. */
const REAL = 'container!="", container!="POD"';

export function dur(seconds: number): string {
  return seconds % 86400 === 0 ? `${seconds / 86400}d` : seconds % 3600 === 0 ? `${seconds / 3600}h` : seconds % 60 === 0 ? `${seconds / 60}m` : `${seconds}s`;
}

/** CPU usage in cores per container, as an instant vector. */
export function cpuRate(w: QueryWindow): string {
  if (w.recorded) return RECORDED.cpu;
  return `sum by (${BY}) (rate(container_cpu_usage_seconds_total{${REAL}}[${dur(w.rateSeconds)}]))`;
}

export function memory(w?: QueryWindow): string {
  if (w?.recorded) return RECORDED.memory;
  return `max by (${BY}) (container_memory_working_set_bytes{${REAL}})`;
}

function sub(inner: string, w: QueryWindow): string {
  // A recorded series is already sampled at the rule interval: a plain range reads it.
  if (w.recorded && /^[a-z_:]+$/.test(inner)) return `${inner}[${dur(w.windowSeconds)}]`;
  return `(${inner})[${dur(w.windowSeconds)}:${dur(w.stepSeconds)}]`;
}

/** Hour-of-week (0 = Sunday 00:00 UTC … 167) of the evaluation time, as PromQL. */
export const HOUR_OF_WEEK = '(day_of_week() * 24 + hour())';

/** A filter that is non-empty only during the given hours of week (collapsed into ranges). */
export function hoursFilter(hours: readonly number[]): string {
  const sorted = [...new Set(hours)].sort((a, b) => a - b);
  if (sorted.length === 0) return 'vector(1) < 0'; // never
  if (sorted.length === 168) return 'vector(1)';
  const ranges: Array<[number, number]> = [];
  for (const h of sorted) {
    const last = ranges[ranges.length - 1];
    if (last && last[1] === h - 1) last[1] = h;
    else ranges.push([h, h]);
  }
  return ranges
    .map(([a, b]) => (a === b ? `${HOUR_OF_WEEK} == ${a}` : `${HOUR_OF_WEEK} >= ${a} <= ${b}`))
    .map((t) => `(${t})`)
    .join(' or ');
}

/**
 * One query per statistic for all containers. Memory and the CPU average read plain ranges;
 * CPU min, max and quantiles need the rate at every step, hence subqueries (or, with
 * recording rules, plain ranges of the recorded rate).
 */
export const statisticQueries = {
  cpuMin: (w: QueryWindow) => `min_over_time(${sub(cpuRate(w), w)})`,
  /** The true average over the window: the counter's increase ÷ window (no subquery needed). */
  cpuAvg: (w: QueryWindow) =>
    w.recorded ? `avg_over_time(${sub(cpuRate(w), w)})` : `sum by (${BY}) (rate(container_cpu_usage_seconds_total{${REAL}}[${dur(w.windowSeconds)}]))`,
  cpuMax: (w: QueryWindow) => `max_over_time(${sub(cpuRate(w), w)})`,
  cpuP50: (w: QueryWindow) => `quantile_over_time(0.5, ${sub(cpuRate(w), w)})`,
  cpuP90: (w: QueryWindow) => `quantile_over_time(0.9, ${sub(cpuRate(w), w)})`,
  cpuP95: (w: QueryWindow) => `quantile_over_time(0.95, ${sub(cpuRate(w), w)})`,
  cpuP99: (w: QueryWindow) => `quantile_over_time(0.99, ${sub(cpuRate(w), w)})`,
  /** Subquery points with data, × step = history length. */
  cpuSamples: (w: QueryWindow) => `count_over_time(${sub(cpuRate(w), w)})`,
  memMin: (w: QueryWindow) =>
    w.recorded ? `min_over_time(${sub(memory(w), w)})` : `min by (${BY}) (min_over_time(container_memory_working_set_bytes{${REAL}}[${dur(w.windowSeconds)}]))`,
  memAvg: (w: QueryWindow) =>
    w.recorded ? `avg_over_time(${sub(memory(w), w)})` : `avg by (${BY}) (avg_over_time(container_memory_working_set_bytes{${REAL}}[${dur(w.windowSeconds)}]))`,
  memMax: (w: QueryWindow) =>
    w.recorded ? `max_over_time(${sub(memory(w), w)})` : `max by (${BY}) (max_over_time(container_memory_working_set_bytes{${REAL}}[${dur(w.windowSeconds)}]))`,
  oomKilled: (w: QueryWindow) =>
    `max by (${BY}) (max_over_time(kube_pod_container_status_last_terminated_reason{reason="OOMKilled"}[${dur(w.windowSeconds)}]))`,
  throttling: (w: QueryWindow) =>
    `sum by (${BY}) (increase(container_cpu_cfs_throttled_periods_total{${REAL}}[${dur(w.windowSeconds)}])) / sum by (${BY}) (increase(container_cpu_cfs_periods_total{${REAL}}[${dur(w.windowSeconds)}]))`,
};

/** The CPU quantile over the hours of one season only. */
export function seasonCpuQuantile(w: QueryWindow, q: number, hours: readonly number[]): string {
  return `quantile_over_time(${q}, ${sub(`${cpuRate(w)} and on() (${hoursFilter(hours)})`, w)})`;
}

/** Cluster CPU in cores, for the hour-of-week profile (a range query). */
export function clusterCpu(w: QueryWindow): string {
  if (w.recorded) return RECORDED.clusterCpu;
  return `sum(rate(container_cpu_usage_seconds_total{${REAL}}[${dur(w.rateSeconds)}]))`;
}

export const ownerQueries = {
  pods: () => 'max by (namespace, pod, owner_kind, owner_name) (kube_pod_owner)',
  replicaSets: () => 'max by (namespace, replicaset, owner_kind, owner_name) (kube_replicaset_owner)',
};

export const resourceQueries = {
  requests: () => `max by (${BY}, resource) (kube_pod_container_resource_requests)`,
  limits: () => `max by (${BY}, resource) (kube_pod_container_resource_limits)`,
};
