/**
 * What-if: per workload container, the current requests next to the recommended requests
 * for peak and off-peak, the CPU and memory that would be saved, and the risk — how often
 * usage would have been above the new request. Runs in the controller (GET /api/v1/whatif)
 * and standalone (`nemutator whatif --prometheus URL`).
 *
 * Risk is read off the usage distribution the statistics give (min, p50, p90, p95, p99, max):
 * the fraction of the window above the request, interpolating linearly between those points.
 */
import { recommend, type Resources } from './engine.ts';
import type { PrometheusClient } from './prometheus.ts';
import { resourceQueries } from './queries.ts';
import type { TelemetrySettings } from './service.ts';
import type { CpuStats, OwnerLookup, Snapshot, WorkloadRef } from './statistics.ts';
import { workloadKey } from './statistics.ts';

export interface WhatIfRow {
  workload: WorkloadRef;
  container: string;
  pods: number;
  current: Resources;
  peak: { cpu: number; memory: number };
  offPeak: { cpu: number; memory: number };
  /** Cores and bytes saved across the workload's pods, weighted by the hours of each season. */
  saved: { cpu: number | null; memory: number | null };
  /** Fraction of the window with usage above the recommended request (peak and off-peak). */
  risk: { peak: number; offPeak: number };
  confidence: number;
}

export interface WhatIf {
  at: string;
  window: string;
  peakHoursPerWeek: number;
  rows: WhatIfRow[];
  totals: { currentCpu: number; recommendedCpu: number; savedCpu: number; currentMemory: number; recommendedMemory: number; savedMemory: number };
}

/** Fraction of time usage exceeds `request`, from the CPU quantiles. */
export function exceedance(cpu: CpuStats, request: number): number {
  const pts: Array<[number, number]> = [
    [cpu.min, 0],
    [cpu.p50, 0.5],
    [cpu.p90, 0.9],
    [cpu.p95, 0.95],
    [cpu.p99, 0.99],
    [cpu.max, 1],
  ];
  if (request >= cpu.max) return 0;
  if (request < cpu.min) return 1;
  for (let i = 1; i < pts.length; i++) {
    const [x0, y0] = pts[i - 1]!;
    const [x1, y1] = pts[i]!;
    if (request <= x1) return 1 - (x1 === x0 ? y1 : y0 + ((request - x0) / (x1 - x0)) * (y1 - y0));
  }
  return 0;
}

/** Current per-pod requests of a workload container (any pod; they come from one template). */
export type CurrentRequests = (workload: WorkloadRef, container: string) => { requests: Resources; limits: Resources } | undefined;

export function computeWhatIf(snapshot: Snapshot, settings: TelemetrySettings, current: CurrentRequests): WhatIf {
  const peakFrac = snapshot.schedule.peakHours.length / 168;
  const rows: WhatIfRow[] = [];
  const totals = { currentCpu: 0, recommendedCpu: 0, savedCpu: 0, currentMemory: 0, recommendedMemory: 0, savedMemory: 0 };
  for (const w of snapshot.workloads) {
    const cur = current(w.workload, w.container) ?? { requests: {}, limits: {} };
    const peak = recommend(w, settings.brainsets.peak, settings.engine, cur);
    const off = recommend(w, settings.brainsets['off-peak'], settings.engine, cur);
    const avgCpu = peakFrac * peak.requests.cpu + (1 - peakFrac) * off.requests.cpu;
    const avgMem = peakFrac * peak.requests.memory + (1 - peakFrac) * off.requests.memory;
    const saved = {
      cpu: cur.requests.cpu === undefined ? null : (cur.requests.cpu - avgCpu) * w.pods,
      memory: cur.requests.memory === undefined ? null : (cur.requests.memory - avgMem) * w.pods,
    };
    totals.recommendedCpu += avgCpu * w.pods;
    totals.recommendedMemory += avgMem * w.pods;
    if (cur.requests.cpu !== undefined) totals.currentCpu += cur.requests.cpu * w.pods;
    if (cur.requests.memory !== undefined) totals.currentMemory += cur.requests.memory * w.pods;
    totals.savedCpu += saved.cpu ?? 0;
    totals.savedMemory += saved.memory ?? 0;
    rows.push({
      workload: w.workload,
      container: w.container,
      pods: w.pods,
      current: cur.requests,
      peak: peak.requests,
      offPeak: off.requests,
      saved,
      risk: { peak: exceedance(w.cpu, peak.requests.cpu), offPeak: exceedance(w.cpu, off.requests.cpu) },
      confidence: peak.confidence,
    });
  }
  const h = snapshot.window.windowSeconds;
  return { at: new Date(snapshot.at * 1000).toISOString(), window: `${h / 3600}h`, peakHoursPerWeek: snapshot.schedule.peakHours.length, rows, totals };
}

/** Current requests from kube-state-metrics (when there is no cluster to ask): one query each for requests and limits. */
export async function currentFromPrometheus(prom: PrometheusClient, at: number, owners: OwnerLookup): Promise<CurrentRequests> {
  const [req, lim] = await Promise.all([prom.query(resourceQueries.requests(), at), prom.query(resourceQueries.limits(), at)]);
  const table = new Map<string, { requests: Resources; limits: Resources }>();
  for (const [samples, field] of [
    [req, 'requests'],
    [lim, 'limits'],
  ] as const) {
    for (const s of samples) {
      const l = s.labels;
      const r = l.resource === 'cpu' ? 'cpu' : l.resource === 'memory' ? 'memory' : undefined;
      if (!r) continue;
      const w = owners(l.namespace ?? '', l.pod ?? '');
      if (!w) continue;
      const k = workloadKey(w, l.container ?? '');
      const e = table.get(k) ?? { requests: {}, limits: {} };
      e[field][r] = s.value;
      table.set(k, e);
    }
  }
  return (w, c) => table.get(workloadKey(w, c));
}
