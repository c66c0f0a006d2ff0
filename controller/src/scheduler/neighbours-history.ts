/**
 * The signals of the bad-neighbour formula (neighbours.ts), gathered from the agents'
 * NodeReports as they arrive on the fleet link, and from the pods' status (requests, restart
 * counts, OOM kills) through `PodFactsLookup`.
 *
 * Per report and pod, one sample: CPU above request, throttling inflicted on the node's other
 * pods, memory pressure while it holds memory (see `Signals`). Samples of the last `nowMs` are
 * kept as they are (`now`); every sample is also folded into buckets of a twelfth of the
 * window (at least a minute: 5 min for 1 h) holding sums, count, the worst sample and the
 * working set at start and end (`usual`, `worst`), so memory is bounded by pods × 13 buckets,
 * whatever the report interval.
 * Throttling comes from counters (cumulative), so it needs two reports of the same container.
 */
import type { INodeReport } from '#proto/codec.js';

import { type Dimension, DIMENSIONS, type NeighbourWeights, NO_SIGNALS, type PodSignals, rawOf, type Signals, type WorkloadRef } from './neighbours.ts';

/** What the cluster says about a pod: whose it is, what it asked for, how often it restarted. */
export interface PodFacts {
  workload: WorkloadRef;
  /** Sum of the containers' CPU requests, in cores; 0 or absent = none (BestEffort: all of its CPU is above request). */
  cpuRequestCores?: number;
  /** Sum of the containers' restartCount. */
  restarts: number;
  /** Some container's last termination was OOMKilled (restarts seen while true count as OOM kills). */
  oomKilled: boolean;
}

export type PodFactsLookup = (namespace: string, name: string) => PodFacts | undefined;

type Instant = Pick<Signals, 'cpuOverRequest' | 'inflictedThrottling' | 'memoryPressure'>;

interface Sample extends Instant {
  t: number;
  raw: number;
  ws: number;
}

/**
 * A pod's older samples, folded into buckets of `bucketMs` in one Float64Array ring (no object
 * per bucket: 20,000 pods cost about 25 MB, bench in docs/neighbours.md). Slot fields:
 */
const F = { id: 0, n: 1, sumCpu: 2, sumThr: 3, sumMem: 4, worstCpu: 5, worstThr: 6, worstMem: 7, worstRaw: 8, wsFirst: 9, wsLast: 10 } as const;
const FIELDS = 11;

class BucketRing {
  readonly data: Float64Array;
  constructor(readonly slots: number) {
    this.data = new Float64Array(slots * FIELDS).fill(-1);
  }

  add(id: number, s: Sample): void {
    const o = (id % this.slots) * FIELDS;
    const d = this.data;
    if (d[o + F.id] !== id) {
      d.fill(0, o, o + FIELDS);
      d[o + F.id] = id;
      d[o + F.worstRaw] = -1;
      d[o + F.wsFirst] = s.ws;
    }
    d[o + F.n]! += 1;
    d[o + F.sumCpu]! += s.cpuOverRequest;
    d[o + F.sumThr]! += s.inflictedThrottling;
    d[o + F.sumMem]! += s.memoryPressure;
    d[o + F.wsLast] = s.ws;
    if (s.raw > d[o + F.worstRaw]!) {
      d[o + F.worstRaw] = s.raw;
      d[o + F.worstCpu] = s.cpuOverRequest;
      d[o + F.worstThr] = s.inflictedThrottling;
      d[o + F.worstMem] = s.memoryPressure;
    }
  }

  /** Offsets of the slots holding buckets `fromId` or later, oldest first. */
  live(fromId: number): number[] {
    const out: number[] = [];
    for (let o = 0; o < this.data.length; o += FIELDS) if (this.data[o + F.id]! >= fromId) out.push(o);
    return out.sort((a, b) => this.data[a + F.id]! - this.data[b + F.id]!);
  }
}

interface PodTrack {
  namespace: string;
  name: string;
  node: string;
  workload: WorkloadRef;
  recent: Sample[];
  buckets: BucketRing;
  restartsSeen?: number;
  restartEvents: Array<{ t: number; n: number; oom: boolean }>;
  lastSeen: number;
}

export interface HistoryOptions {
  nowMs: number;
  windowMs: number;
  weights: NeighbourWeights;
}

/** Below this a working set's growth is measured against 64 MiB: a 1 MiB pod doubling is no news. */
const GROWTH_BASE = 64 * 1024 * 1024;

const counterKey = (node: string, id: string) => `${node}\u0000${id}`;

export class NeighbourHistory {
  private readonly pods = new Map<string, PodTrack>();
  /** Last throttling counters per container: [throttled periods, periods]. */
  private readonly counters = new Map<string, [number, number]>();
  private readonly counterSeen = new Map<string, number>();
  private readonly nodesSeen = new Map<string, number>();
  private swept = 0;

  /** Length of one bucket: a twelfth of the window, at least a minute (5 min for 1 h). */
  readonly bucketMs: number;
  private readonly slots: number;

  constructor(private readonly opts: HistoryOptions) {
    this.bucketMs = Math.max(60_000, Math.ceil(opts.windowMs / 12));
    // the window's buckets, plus the one it starts in
    this.slots = Math.ceil(opts.windowMs / this.bucketMs) + 1;
  }

  /** Nodes that reported within the window. */
  nodes(at: number): number {
    let n = 0;
    for (const t of this.nodesSeen.values()) if (at - t <= this.opts.windowMs) n++;
    return n;
  }

  /** One NodeReport: a sample for every pod the agent knows by name. */
  ingest(nodeName: string, report: INodeReport, facts: PodFactsLookup, at: number): void {
    this.nodesSeen.set(nodeName, at);
    const cores = Math.max(1, report.node?.cpuCores ?? 1);
    const cpuPsi = (report.node?.cpuPressure?.someAvg10 ?? 0) / 100;
    const memPsi = (report.node?.memoryPressure?.someAvg10 ?? 0) / 100;
    const rows = this.rows(nodeName, report, facts, at);
    const excessTotal = rows.reduce((a, r) => a + r.excess, 0);
    const wsTotal = rows.reduce((a, r) => a + r.ws, 0);
    const throttled = rows.filter((r) => r.throttle !== undefined);
    const throttleSum = throttled.reduce((a, r) => a + r.throttle!, 0);
    for (const r of rows) {
      // the mean throttled ratio of the other pods with CFS periods (this one left out)
      const others = throttled.length - (r.throttle !== undefined ? 1 : 0);
      const othersThrottle = others === 0 ? 0 : (throttleSum - (r.throttle ?? 0)) / others;
      const suffering = Math.max(othersThrottle, cpuPsi);
      const instant: Instant = {
        cpuOverRequest: r.excess / cores,
        inflictedThrottling: excessTotal > 0 ? (r.excess / excessTotal) * suffering : 0,
        memoryPressure: wsTotal > 0 ? (r.ws / wsTotal) * memPsi : 0,
      };
      const track = this.record(nodeName, r.namespace, r.name, r.facts, {
        ...instant,
        t: at,
        ws: r.ws,
        raw: rawOf({ ...NO_SIGNALS, ...instant }, this.opts.weights),
      });
      this.trim(track, at);
    }
    // Pods that stopped being reported are forgotten by a sweep, at most once a minute: an
    // ingest costs the pods of its report, not the whole fleet.
    if (at - this.swept >= 60_000) this.prune(at);
  }

  private rows(nodeName: string, report: INodeReport, facts: PodFactsLookup, at: number) {
    const rows: Array<{ namespace: string; name: string; facts: PodFacts | undefined; excess: number; ws: number; throttle: number | undefined }> = [];
    for (const pod of report.pods ?? []) {
      if (!pod.namespace || !pod.name) continue;
      let cpu = 0;
      let ws = 0;
      let dThrottled = 0;
      let dPeriods = 0;
      for (const c of pod.containers ?? []) {
        cpu += c.cpuUsageCores ?? 0;
        ws += Number(c.memoryWorkingSetBytes ?? 0);
        if (!c.id) continue;
        const key = counterKey(nodeName, c.id);
        const now: [number, number] = [Number(c.cpuThrottledPeriodsTotal ?? 0), Number(c.cpuPeriodsTotal ?? 0)];
        const prev = this.counters.get(key);
        this.counters.set(key, now);
        this.counterSeen.set(key, at);
        // A counter that went back is a new container behind the same id: no delta this time.
        if (prev && now[1] > prev[1] && now[0] >= prev[0]) {
          dThrottled += now[0] - prev[0];
          dPeriods += now[1] - prev[1];
        }
      }
      const f = facts(pod.namespace, pod.name);
      rows.push({
        namespace: pod.namespace,
        name: pod.name,
        facts: f,
        excess: Math.max(0, cpu - (f?.cpuRequestCores ?? 0)),
        ws,
        throttle: dPeriods > 0 ? dThrottled / dPeriods : undefined,
      });
    }
    return rows;
  }

  private record(node: string, namespace: string, name: string, facts: PodFacts | undefined, s: Sample): PodTrack {
    const key = `${namespace}/${name}`;
    let track = this.pods.get(key);
    if (!track) {
      track = {
        namespace,
        name,
        node,
        workload: facts?.workload ?? { namespace, kind: 'Pod', name },
        recent: [],
        buckets: new BucketRing(this.slots),
        restartEvents: [],
        lastSeen: s.t,
      };
      this.pods.set(key, track);
    }
    track.node = node;
    track.lastSeen = s.t;
    if (facts) {
      track.workload = facts.workload;
      if (track.restartsSeen !== undefined && facts.restarts > track.restartsSeen)
        track.restartEvents.push({ t: s.t, n: facts.restarts - track.restartsSeen, oom: facts.oomKilled });
      track.restartsSeen = facts.restarts;
    }
    track.recent.push(s);
    track.buckets.add(Math.floor(s.t / this.bucketMs), s);
    return track;
  }

  /** Drops what one pod's spans no longer cover. */
  private trim(t: PodTrack, at: number): void {
    const { nowMs, windowMs } = this.opts;
    // buckets need no trimming: a slot is reused by the bucket that falls on it, and reads skip old ones
    while (t.recent.length > 0 && at - t.recent[0]!.t > nowMs) t.recent.shift();
    while (t.restartEvents.length > 0 && at - t.restartEvents[0]!.t > windowMs) t.restartEvents.shift();
  }

  private prune(at: number): void {
    this.swept = at;
    for (const [key, t] of this.pods) {
      if (at - t.lastSeen > this.opts.windowMs) this.pods.delete(key);
      else this.trim(t, at);
    }
    for (const [id, seen] of this.counterSeen) {
      if (at - seen <= this.opts.windowMs) continue;
      this.counterSeen.delete(id);
      this.counters.delete(id);
    }
  }

  /** Every pod seen within the window, with its signals for now, usual and worst. */
  signals(at: number): PodSignals[] {
    this.prune(at);
    const out: PodSignals[] = [];
    for (const t of this.pods.values()) {
      const signals = Object.fromEntries(DIMENSIONS.map((d) => [d, this.span(t, d, at)])) as Record<Dimension, Signals>;
      out.push({ namespace: t.namespace, name: t.name, node: t.node, workload: t.workload, signals });
    }
    return out;
  }

  private span(t: PodTrack, dim: Dimension, at: number): Signals {
    const since = at - (dim === 'now' ? this.opts.nowMs : this.opts.windowMs);
    const events = t.restartEvents.filter((e) => e.t >= since);
    const restarts = events.reduce((a, e) => a + e.n, 0);
    const ooms = events.filter((e) => e.oom).reduce((a, e) => a + e.n, 0);
    const growth = (first: number, last: number) => Math.max(0, (last - first) / Math.max(first, GROWTH_BASE));
    if (dim === 'now') {
      const r = t.recent;
      if (r.length === 0) return { ...NO_SIGNALS, restarts, ooms };
      const m = (k: keyof Instant) => r.reduce((a, s) => a + s[k], 0) / r.length;
      return {
        cpuOverRequest: m('cpuOverRequest'),
        inflictedThrottling: m('inflictedThrottling'),
        memoryPressure: m('memoryPressure'),
        memoryGrowth: growth(r[0]!.ws, r.at(-1)!.ws),
        restarts,
        ooms,
      };
    }
    const d = t.buckets.data;
    // a bucket counts while its end is inside the window
    const live = t.buckets.live(Math.floor((at - this.opts.windowMs) / this.bucketMs));
    if (live.length === 0) return { ...NO_SIGNALS, restarts, ooms };
    const memoryGrowth = growth(d[live[0]! + F.wsFirst]!, d[live.at(-1)! + F.wsLast]!);
    if (dim === 'worst') {
      let w = live[0]!;
      for (const o of live) if (d[o + F.worstRaw]! > d[w + F.worstRaw]!) w = o;
      return { cpuOverRequest: d[w + F.worstCpu]!, inflictedThrottling: d[w + F.worstThr]!, memoryPressure: d[w + F.worstMem]!, memoryGrowth, restarts, ooms };
    }
    const n = live.reduce((a, o) => a + d[o + F.n]!, 0);
    const m = (field: number) => live.reduce((a, o) => a + d[o + field]!, 0) / n;
    return { cpuOverRequest: m(F.sumCpu), inflictedThrottling: m(F.sumThr), memoryPressure: m(F.sumMem), memoryGrowth, restarts, ooms };
  }
}
