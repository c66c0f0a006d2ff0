/**
 * The signals of the bad-neighbour formula (neighbours.ts), gathered from the agents'
 * NodeReports as they arrive on the fleet link, and from the pods' status (requests, restart
 * counts, OOM kills) through `PodFactsLookup`.
 *
 * Per report and pod, one sample: CPU above request, throttling inflicted on the node's other
 * pods, memory pressure while it holds memory (see `Signals`). Samples of the last `nowMs` are
 * kept as they are (`now`); older ones are folded into one bucket per minute (sum, count, the
 * worst sample, working set at its start and end) for `windowMs` (`usual`, `worst`), so the
 * memory this takes is bounded by pods × window minutes, whatever the report interval.
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

interface MinuteBucket {
  minute: number;
  n: number;
  sum: Instant;
  worst: Instant;
  worstRaw: number;
  wsFirst: number;
  wsLast: number;
}

interface PodTrack {
  namespace: string;
  name: string;
  node: string;
  workload: WorkloadRef;
  recent: Sample[];
  minutes: MinuteBucket[];
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
  private readonly nodesSeen = new Map<string, number>();

  constructor(private readonly opts: HistoryOptions) {}

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
    const rows = this.rows(nodeName, report, facts);
    const excessTotal = rows.reduce((a, r) => a + r.excess, 0);
    const wsTotal = rows.reduce((a, r) => a + r.ws, 0);
    const throttled = rows.filter((r) => r.throttle !== undefined);
    for (const r of rows) {
      const others = throttled.filter((o) => o !== r);
      const othersThrottle = others.length === 0 ? 0 : others.reduce((a, o) => a + o.throttle!, 0) / others.length;
      const suffering = Math.max(othersThrottle, cpuPsi);
      const instant: Instant = {
        cpuOverRequest: r.excess / cores,
        inflictedThrottling: excessTotal > 0 ? (r.excess / excessTotal) * suffering : 0,
        memoryPressure: wsTotal > 0 ? (r.ws / wsTotal) * memPsi : 0,
      };
      this.record(nodeName, r.namespace, r.name, r.facts, { ...instant, t: at, ws: r.ws, raw: rawOf({ ...NO_SIGNALS, ...instant }, this.opts.weights) });
    }
    this.prune(at);
  }

  private rows(nodeName: string, report: INodeReport, facts: PodFactsLookup) {
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

  private record(node: string, namespace: string, name: string, facts: PodFacts | undefined, s: Sample): void {
    const key = `${namespace}/${name}`;
    let track = this.pods.get(key);
    if (!track) {
      track = {
        namespace,
        name,
        node,
        workload: facts?.workload ?? { namespace, kind: 'Pod', name },
        recent: [],
        minutes: [],
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
    const minute = Math.floor(s.t / 60_000);
    let b = track.minutes.at(-1);
    if (!b || b.minute !== minute) {
      b = { minute, n: 0, sum: { cpuOverRequest: 0, inflictedThrottling: 0, memoryPressure: 0 }, worst: s, worstRaw: -1, wsFirst: s.ws, wsLast: s.ws };
      track.minutes.push(b);
    }
    b.n++;
    b.sum.cpuOverRequest += s.cpuOverRequest;
    b.sum.inflictedThrottling += s.inflictedThrottling;
    b.sum.memoryPressure += s.memoryPressure;
    b.wsLast = s.ws;
    if (s.raw > b.worstRaw) {
      b.worstRaw = s.raw;
      b.worst = { cpuOverRequest: s.cpuOverRequest, inflictedThrottling: s.inflictedThrottling, memoryPressure: s.memoryPressure };
    }
  }

  private prune(at: number): void {
    const { nowMs, windowMs } = this.opts;
    for (const [key, t] of this.pods) {
      if (at - t.lastSeen > windowMs) {
        this.pods.delete(key);
        continue;
      }
      while (t.recent.length > 0 && at - t.recent[0]!.t > nowMs) t.recent.shift();
      while (t.minutes.length > 0 && at - (t.minutes[0]!.minute + 1) * 60_000 > windowMs) t.minutes.shift();
      while (t.restartEvents.length > 0 && at - t.restartEvents[0]!.t > windowMs) t.restartEvents.shift();
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

  private span(t: PodTrack, d: Dimension, at: number): Signals {
    const since = at - (d === 'now' ? this.opts.nowMs : this.opts.windowMs);
    const events = t.restartEvents.filter((e) => e.t >= since);
    const restarts = events.reduce((a, e) => a + e.n, 0);
    const ooms = events.filter((e) => e.oom).reduce((a, e) => a + e.n, 0);
    const growth = (first: number, last: number) => Math.max(0, (last - first) / Math.max(first, GROWTH_BASE));
    if (d === 'now') {
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
    const b = t.minutes;
    if (b.length === 0) return { ...NO_SIGNALS, restarts, ooms };
    const memoryGrowth = growth(b[0]!.wsFirst, b.at(-1)!.wsLast);
    if (d === 'worst') {
      let w = b[0]!;
      for (const x of b) if (x.worstRaw > w.worstRaw) w = x;
      return { ...w.worst, memoryGrowth, restarts, ooms };
    }
    const n = b.reduce((a, x) => a + x.n, 0);
    const m = (k: keyof Instant) => b.reduce((a, x) => a + x.sum[k], 0) / n;
    return {
      cpuOverRequest: m('cpuOverRequest'),
      inflictedThrottling: m('inflictedThrottling'),
      memoryPressure: m('memoryPressure'),
      memoryGrowth,
      restarts,
      ooms,
    };
  }
}
