/** A simulated node: the scheduler's cache of it (requests, residents) and its agent's reports. */
import type { Resources } from '../score.ts';
import type { WorkloadSpec } from './day.ts';
import type { NodeView, PodView } from './scorers.ts';

export interface Report {
  sampledAt: number;
  visibleAt: number;
  usage: Resources;
  psi: { cpuSome10: number; memorySome10: number };
}

/** PSI from how close the node's demand is to its capacity (CPU stalls start before 100 %). */
export function simulatedPsi(cpuDemand: number, memory: number, alloc: Resources): { cpuSome10: number; memorySome10: number } {
  const c = cpuDemand / alloc.cpuMillis;
  const m = memory / alloc.memoryBytes;
  return {
    cpuSome10: Math.min(100, Math.max(0, (c - 0.75) * 120)),
    memorySome10: Math.min(100, Math.max(0, (m - 0.9) * 300)),
  };
}

export class SimNode implements NodeView {
  readonly pods = new Set<number>();
  readonly requested: Resources = { cpuMillis: 0, memoryBytes: 0 };
  private readonly predicted: Resources = { cpuMillis: 0, memoryBytes: 0 };
  readonly byWorkload = new Map<number, number>();
  emptySince: number;
  reports: Report[] = [];
  report: NodeView['report'];
  placements: Array<{ at: number; pod: PodView }> = [];
  placedSinceReport: PodView[] = [];

  constructor(
    readonly name: string,
    readonly allocatable: Resources,
    readonly readyAt: number,
    private readonly workloads: WorkloadSpec[],
  ) {
    this.emptySince = readyAt;
  }

  familiars(workload: number): number {
    return this.byWorkload.get(workload) ?? 0;
  }

  residentsNeighbourWorst(): number[] {
    const out: number[] = [];
    for (const [w, n] of this.byWorkload) for (let i = 0; i < n; i++) out.push(this.workloads[w]!.neighbourWorst);
    return out;
  }

  residentsPredicted(): Resources {
    return { ...this.predicted };
  }

  /** The report the scheduler sees at `now`, and the pods bound after it was sampled. */
  refreshView(now: number): void {
    let seen: Report | undefined;
    for (const r of this.reports) if (r.visibleAt <= now) seen = r;
    this.reports = this.reports.filter((r) => r === seen || r.visibleAt > now);
    this.report = seen && { usage: seen.usage, psi: seen.psi, ageMs: (now - seen.sampledAt) * 1000 };
    const since = seen?.sampledAt ?? -Infinity;
    this.placements = this.placements.filter((p) => p.at >= since);
    this.placedSinceReport = this.placements.map((p) => p.pod);
  }

  add(podId: number, view: PodView, now: number): void {
    this.pods.add(podId);
    this.requested.cpuMillis += view.requests.cpuMillis;
    this.requested.memoryBytes += view.requests.memoryBytes;
    this.predicted.cpuMillis += view.predicted.cpuMillis;
    this.predicted.memoryBytes += view.predicted.memoryBytes;
    this.byWorkload.set(view.workload, this.familiars(view.workload) + 1);
    this.placements.push({ at: now, pod: view });
    this.placedSinceReport.push(view);
  }

  remove(podId: number, view: PodView, now: number): void {
    if (!this.pods.delete(podId)) return;
    this.requested.cpuMillis -= view.requests.cpuMillis;
    this.requested.memoryBytes -= view.requests.memoryBytes;
    this.predicted.cpuMillis -= view.predicted.cpuMillis;
    this.predicted.memoryBytes -= view.predicted.memoryBytes;
    const n = this.familiars(view.workload) - 1;
    if (n > 0) this.byWorkload.set(view.workload, n);
    else this.byWorkload.delete(view.workload);
    if (this.pods.size === 0) this.emptySince = now;
  }

  fits(r: Resources): boolean {
    return this.requested.cpuMillis + r.cpuMillis <= this.allocatable.cpuMillis && this.requested.memoryBytes + r.memoryBytes <= this.allocatable.memoryBytes;
  }
}
