/**
 * The scheduling simulator: replays a generated day (day.ts) on a cluster of nodes with a
 * given scorer (scorers.ts), a kube-scheduler-like loop (filter: requests fit allocatable;
 * score; highest wins, ties broken at random as selectHost does), agents that report each
 * node's real usage and PSI every 10 s with a lag, and a cluster autoscaler that adds a node
 * when a pod fits nowhere and removes one after it has been empty for a while. It measures
 * what a cluster owner pays for and feels: node-hours, hot-node minutes, pods sharing a node
 * with a bad neighbour, unschedulable minutes. docs/scheduler-simulator.md describes the model.
 */
import type { Resources, ScoreWeights, Season } from '../score.ts';
import { type Day, DAY_SECONDS, diurnal, generateDay, podCpu, podMemory, rng } from './day.ts';
import { SimNode, simulatedPsi } from './node.ts';
import { type PodView, type ScoreInput, type Scorer, type ScorerName, scorers } from './scorers.ts';

export interface SimulationOptions {
  scorer: ScorerName;
  seed: number;
  /** Nodes at 00:00 (the autoscaler changes the count during the day). */
  nodes: number;
  /** About how many pods run at the daily peak (the day creates more: churn, batch jobs). */
  pods: number;
  /** The generated day, to share one between scorers; generated from seed and pods otherwise. */
  day?: Day;
  allocatable?: Resources;
  tickSeconds?: number;
  reportIntervalSeconds?: number;
  reportLagSeconds?: number;
  staleAfterMs?: number;
  scaleDownEmptyMinutes?: number;
  /** No scale-down this long after a scale-up (cluster-autoscaler's --scale-down-delay-after-add, default 10m). */
  scaleDownDelayAfterAddMinutes?: number;
  provisionMinutes?: number;
  minNodes?: number;
  maxNodes?: number;
  hotCpuFraction?: number;
  badNeighbourWorst?: number;
  weights?: Partial<ScoreWeights>;
}

export interface SimulationResult {
  scorer: ScorerName;
  seed: number;
  initialNodes: number;
  podsCreated: number;
  nodeHours: number;
  hotNodeMinutes: number;
  /** Pods (not bad neighbours themselves) that shared a node with a pod whose `worst` ≥ the threshold. */
  badNeighbourPods: number;
  /** Minutes during which at least one pod fitted no node. */
  unschedulableMinutes: number;
  /** The same summed over pods: each pending pod counts its own minutes. */
  unschedulablePodMinutes: number;
  nodesAdded: number;
  nodesRemoved: number;
  maxNodesSeen: number;
  minNodesSeen: number;
  /** Per hour of the day: nodes at the end of the hour, hot-node and pending-pod minutes in it, requests / capacity. */
  hourly: HourStats[];
}

export interface HourStats {
  hour: number;
  nodes: number;
  hotNodeMinutes: number;
  unschedulablePodMinutes: number;
  requestedCpu: number;
}

const GiB = 2 ** 30;
const resolved = (o: SimulationOptions) => ({
  allocatable: o.allocatable ?? { cpuMillis: 8000, memoryBytes: 32 * GiB },
  tick: o.tickSeconds ?? 10,
  reportInterval: o.reportIntervalSeconds ?? 10,
  reportLag: o.reportLagSeconds ?? 10,
  staleAfterMs: o.staleAfterMs ?? 60_000,
  scaleDownEmpty: (o.scaleDownEmptyMinutes ?? 10) * 60,
  scaleDownDelayAfterAdd: (o.scaleDownDelayAfterAddMinutes ?? 10) * 60,
  provision: (o.provisionMinutes ?? 2) * 60,
  minNodes: o.minNodes ?? 3,
  maxNodes: o.maxNodes ?? o.nodes * 4,
  hot: o.hotCpuFraction ?? 0.8,
  bad: o.badNeighbourWorst ?? 80,
});
type Settings = ReturnType<typeof resolved>;

/**
 * Telemetry's view of a workload, as the extender gets it: requests, the neighbour score, and
 * the peak brainset's prediction — CPU at the p95 of the workload's per-minute usage over the
 * peak-season hours × 1.15 (peakCpuPercentile, peakCpuMargin), memory at its maximum working
 * set × 1.15 (memoryMargin). Like telemetry, it takes the largest of a few pods' quantiles;
 * the pods are samples of the workload, not the ones the day will run.
 */
export function podViews(day: Day, seasons: Season[] = seasonsOfDay()): PodView[] {
  return day.workloads.map((w, i) => {
    let cpu = 0;
    let mem = 0;
    for (let k = 0; k < PROFILE_PODS; k++) {
      const samples: number[] = [];
      for (let h = 0; h < 24; h++) {
        if (seasons[h] !== 'peak') continue;
        for (let m = 0; m < 60; m++) samples.push(podCpu(w, -1 - i * PROFILE_PODS - k, h * 3600 + m * 60 + 30));
      }
      samples.sort((a, b) => a - b);
      cpu = Math.max(cpu, samples[Math.floor(PEAK_CPU_PERCENTILE * (samples.length - 1))] ?? 0);
    }
    for (let h = 0; h < 24; h++) mem = Math.max(mem, podMemory(w, h * 3600 + 1800));
    return {
      workload: i,
      requests: w.requests,
      predicted: { cpuMillis: cpu * (1 + PEAK_CPU_MARGIN), memoryBytes: mem * (1 + MEMORY_MARGIN) },
      neighbourWorst: w.neighbourWorst,
    };
  });
}
/** Telemetry's defaults (controller config peakCpuPercentile, peakCpuMargin, memoryMargin). */
const PEAK_CPU_PERCENTILE = 0.95;
const PEAK_CPU_MARGIN = 0.15;
const MEMORY_MARGIN = 0.15;
const PROFILE_PODS = 3;

/** Peak and off-peak per hour of the day, as telemetry classifies them: min + peakThreshold × (max − min), 0.5 as its default. */
export function seasonsOfDay(peakThreshold = 0.5): Season[] {
  const profile = Array.from({ length: 24 }, (_, h) => diurnal(h * 3600 + 1800));
  const threshold = Math.min(...profile) + peakThreshold * (Math.max(...profile) - Math.min(...profile));
  return profile.map((v) => (v >= threshold ? 'peak' : 'offpeak'));
}

/** One run: the cluster, the queue, the autoscaler and the counters. */
class Simulation {
  private readonly nodes: SimNode[] = [];
  private readonly where = new Map<number, SimNode>();
  private readonly pending: number[] = [];
  private readonly views: PodView[];
  private readonly podById: Map<number, Day['pods'][number]>;
  private readonly seasons = seasonsOfDay();
  private readonly random: () => number;
  private readonly scorer: Scorer;
  private readonly exposedToBad = new Set<number>();
  private nextNode = 0;
  private unschedulableS = 0;
  private pendingPodS = 0;
  private nodeS = 0;
  private hotS = 0;
  private added = 0;
  private removed = 0;
  private lastAdd = -Infinity;
  private maxSeen = 0;
  private minSeen = Infinity;
  private readonly hourly: HourStats[] = Array.from({ length: 24 }, (_, hour) => ({
    hour,
    nodes: 0,
    hotNodeMinutes: 0,
    unschedulablePodMinutes: 0,
    requestedCpu: 0,
  }));

  constructor(
    private readonly day: Day,
    private readonly opts: SimulationOptions,
    private readonly s: Settings,
  ) {
    this.views = podViews(day, this.seasons);
    this.podById = new Map(day.pods.map((p) => [p.id, p]));
    this.random = rng(opts.seed ^ 0x5ced);
    this.scorer = scorers[opts.scorer];
    for (let i = 0; i < opts.nodes; i++) this.addNode(0);
  }

  private addNode(readyAt: number): SimNode {
    const n = new SimNode(`node-${this.nextNode++}`, this.s.allocatable, readyAt, this.day.workloads);
    this.nodes.push(n);
    return n;
  }

  run(): SimulationResult {
    const pods = this.day.pods;
    const byLeave = [...pods].sort((a, b) => a.leaveAt - b.leaveAt);
    let arrive = 0;
    let leave = 0;
    for (let t = 0; t < DAY_SECONDS; t += this.s.tick) {
      while (leave < byLeave.length && byLeave[leave]!.leaveAt <= t) this.depart(byLeave[leave++]!.id, t);
      if (t % this.s.reportInterval === 0) this.sampleReports(t);
      for (const n of this.nodes) n.refreshView(t);
      while (arrive < pods.length && pods[arrive]!.arriveAt <= t) this.pending.push(pods[arrive++]!.id);
      this.schedule(t);
      this.autoscale(t);
      this.measure(t);
    }
    return this.result();
  }

  private view(podId: number): PodView {
    return this.views[this.podById.get(podId)!.workload]!;
  }

  private depart(podId: number, t: number): void {
    const node = this.where.get(podId);
    if (node) {
      node.remove(podId, this.view(podId), t);
      this.where.delete(podId);
      return;
    }
    const i = this.pending.indexOf(podId);
    if (i >= 0) this.pending.splice(i, 1);
  }

  /** Each node's agent samples real usage now; the scheduler sees it reportLag seconds later. */
  private sampleReports(t: number): void {
    for (const n of this.nodes) {
      if (n.readyAt > t) continue;
      const usage = this.demand(n, t);
      const psi = simulatedPsi(usage.cpuMillis, usage.memoryBytes, n.allocatable);
      n.reports.push({
        sampledAt: t,
        visibleAt: t + this.s.reportLag,
        usage: { cpuMillis: Math.min(usage.cpuMillis, n.allocatable.cpuMillis), memoryBytes: usage.memoryBytes },
        psi,
      });
    }
  }

  private demand(n: SimNode, t: number): Resources {
    let cpu = 0;
    let mem = 0;
    for (const id of n.pods) {
      const w = this.day.workloads[this.podById.get(id)!.workload]!;
      cpu += podCpu(w, id, t);
      mem += podMemory(w, t);
    }
    return { cpuMillis: cpu, memoryBytes: mem };
  }

  /** The queue in order; each pod goes to the best-scoring node its requests fit (ties at random). */
  private schedule(t: number): void {
    if (this.pending.length === 0) return;
    const input: ScoreInput = {
      season: this.seasonAt(t),
      staleAfterMs: this.s.staleAfterMs,
      ...(this.opts.weights ? { weights: this.opts.weights } : {}),
    };
    const still: number[] = [];
    for (const id of this.pending) {
      const view = this.view(id);
      const node = this.pick(view, t, input);
      if (!node) {
        still.push(id);
        continue;
      }
      node.add(id, view, t);
      this.where.set(id, node);
    }
    this.pending.splice(0, this.pending.length, ...still);
  }

  /** The season telemetry's schedule gives for the hour (the extender reads the same). */
  private seasonAt(t: number): Season {
    return this.seasons[Math.floor(t / 3600) % 24]!;
  }

  private pick(view: PodView, t: number, input: ScoreInput): SimNode | undefined {
    let best: SimNode | undefined;
    let bestScore = -Infinity;
    let ties = 0;
    for (const n of this.nodes) {
      if (n.readyAt > t || !n.fits(view.requests)) continue;
      const score = this.scorer(view, n, input);
      if (score > bestScore) {
        best = n;
        bestScore = score;
        ties = 1;
      } else if (score === bestScore && this.random() * ++ties < 1) best = n; // reservoir sampling, as selectHost
    }
    return best;
  }

  /** Scale up for pods that fit nowhere (bin-packed onto nodes already on their way); scale down empty nodes. */
  private autoscale(t: number): void {
    const incoming = this.nodes.filter((n) => n.readyAt > t).map((n) => ({ ...n.requested }));
    for (const id of this.pending) {
      const r = this.view(id).requests;
      const a = this.s.allocatable;
      let slot = incoming.find((u) => u.cpuMillis + r.cpuMillis <= a.cpuMillis && u.memoryBytes + r.memoryBytes <= a.memoryBytes);
      if (!slot) {
        if (this.nodes.length >= this.s.maxNodes) break;
        this.addNode(t + this.s.provision);
        this.added++;
        this.lastAdd = t;
        slot = { cpuMillis: 0, memoryBytes: 0 };
        incoming.push(slot);
      }
      slot.cpuMillis += r.cpuMillis;
      slot.memoryBytes += r.memoryBytes;
    }
    if (t - this.lastAdd < this.s.scaleDownDelayAfterAdd) return;
    for (let i = this.nodes.length - 1; i >= 0; i--) {
      const n = this.nodes[i]!;
      if (this.nodes.length <= this.s.minNodes) break;
      if (n.readyAt > t || n.pods.size > 0 || t - n.emptySince < this.s.scaleDownEmpty) continue;
      this.nodes.splice(i, 1);
      this.removed++;
    }
  }

  private measure(t: number): void {
    const tick = this.s.tick;
    this.nodeS += this.nodes.length * tick;
    this.maxSeen = Math.max(this.maxSeen, this.nodes.length);
    this.minSeen = Math.min(this.minSeen, this.nodes.length);
    if (this.pending.length > 0) this.unschedulableS += tick;
    this.pendingPodS += this.pending.length * tick;
    const hour = this.hourly[Math.floor(t / 3600) % 24]!;
    hour.unschedulablePodMinutes += (this.pending.length * tick) / 60;
    hour.nodes = this.nodes.length;
    let requested = 0;
    for (const n of this.nodes) {
      requested += n.requested.cpuMillis;
      if (n.readyAt > t) continue;
      if (n.pods.size > 0 && this.demand(n, t).cpuMillis > this.s.hot * n.allocatable.cpuMillis) {
        this.hotS += tick;
        hour.hotNodeMinutes += tick / 60;
      }
      this.markBadNeighbours(n);
    }
    hour.requestedCpu = requested / (this.nodes.length * this.s.allocatable.cpuMillis);
  }

  private markBadNeighbours(n: SimNode): void {
    let bad = -1;
    for (const w of n.byWorkload.keys()) if (this.day.workloads[w]!.neighbourWorst >= this.s.bad) bad = w;
    if (bad < 0) return;
    for (const id of n.pods) {
      const w = this.day.workloads[this.podById.get(id)!.workload]!;
      if (w.neighbourWorst < this.s.bad) this.exposedToBad.add(id);
    }
  }

  private result(): SimulationResult {
    return {
      scorer: this.opts.scorer,
      seed: this.opts.seed,
      initialNodes: this.opts.nodes,
      podsCreated: this.day.pods.length,
      nodeHours: round1(this.nodeS / 3600),
      hotNodeMinutes: round1(this.hotS / 60),
      badNeighbourPods: this.exposedToBad.size,
      unschedulableMinutes: round1(this.unschedulableS / 60),
      unschedulablePodMinutes: round1(this.pendingPodS / 60),
      nodesAdded: this.added,
      nodesRemoved: this.removed,
      maxNodesSeen: this.maxSeen,
      minNodesSeen: this.minSeen,
      hourly: this.hourly.map((h) => ({
        ...h,
        hotNodeMinutes: round1(h.hotNodeMinutes),
        unschedulablePodMinutes: round1(h.unschedulablePodMinutes),
        requestedCpu: Math.round(h.requestedCpu * 100) / 100,
      })),
    };
  }
}

const round1 = (v: number) => Math.round(v * 10) / 10;

/** Generates (or takes) the day and replays it with one scorer. Deterministic: same options, same result. */
export function simulate(opts: SimulationOptions): SimulationResult {
  const day = opts.day ?? generateDay({ seed: opts.seed, peakPods: opts.pods });
  return new Simulation(day, opts, resolved(opts)).run();
}

/** The same generated day replayed with each scorer. */
export function compareScorers(opts: Omit<SimulationOptions, 'scorer' | 'day'>, names: ScorerName[]): SimulationResult[] {
  const day = generateDay({ seed: opts.seed, peakPods: opts.pods });
  return names.map((scorer) => simulate({ ...opts, scorer, day }));
}
