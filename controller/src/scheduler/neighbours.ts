/**
 * Bad-neighbour scores (the seed's "the good & the ugly, the bad neighbours"): how much a pod,
 * and a workload, hurts the pods it shares nodes with — `now` (the last minute), `usual` (the
 * mean over the window) and `worst` (the max over the window), integers 0..100.
 *
 * This file is the formula, pure: signals in (neighbours-history.ts gathers them from the
 * agents' NodeReports and the pods' status), scores out. docs/neighbours.md documents it;
 * every score comes with its explanation (`NeighbourExplanation`) for the API and the CLI.
 *
 *   raw    = Σ weight × signal                          (absolute: "how much harm")
 *   rank   = mid-rank percentile of raw among workloads (relative: "compared with the cluster")
 *   gate   = min(1, raw / severityFullAt)               (a quiet cluster has no bad neighbour)
 *   score  = round(100 × rank × gate), then at most `highSlots(nodes)` workloads stay ≥ 70
 */

/** The contract with the extender (controller/src/scheduler/extender*.ts). */
export interface NeighbourScore {
  now: number;
  usual: number;
  worst: number;
}

export interface NeighbourLookup {
  forPod(namespace: string, name: string): NeighbourScore | undefined;
  forWorkload(namespace: string, kind: string, name: string): NeighbourScore | undefined;
}

/** A lookup that knows nothing: the extender's default until the scorer is wired. */
export const NO_NEIGHBOURS: NeighbourLookup = { forPod: () => undefined, forWorkload: () => undefined };

export const DIMENSIONS = ['now', 'usual', 'worst'] as const;
export type Dimension = (typeof DIMENSIONS)[number];

/**
 * What one pod did over one dimension's span, each signal ≥ 0:
 * - cpuOverRequest: CPU used above the pod's request, as a fraction of its node's cores;
 * - inflictedThrottling: the co-residents' suffering (their CFS throttled-period ratio, or the
 *   node's CPU PSI some avg10, whichever is higher) times this pod's share of the CPU used above
 *   request on the node — suffering is attributed to whoever took more than it asked for;
 * - memoryPressure: the node's memory PSI some avg10 (0..1) times this pod's share of the node's
 *   pods' working set — pressure while it holds the memory;
 * - memoryGrowth: working-set growth over the span, relative to where it started (≥ 64 MiB);
 * - restarts, ooms: container restarts in the span; those whose last termination was OOMKilled.
 */
export interface Signals {
  cpuOverRequest: number;
  inflictedThrottling: number;
  memoryPressure: number;
  memoryGrowth: number;
  restarts: number;
  ooms: number;
}

export const NO_SIGNALS: Signals = { cpuOverRequest: 0, inflictedThrottling: 0, memoryPressure: 0, memoryGrowth: 0, restarts: 0, ooms: 0 };

export interface WorkloadRef {
  namespace: string;
  kind: string;
  name: string;
}

export interface PodSignals {
  namespace: string;
  name: string;
  node: string;
  workload: WorkloadRef;
  signals: Record<Dimension, Signals>;
}

export interface NeighbourWeights {
  cpuOverRequest: number;
  inflictedThrottling: number;
  memoryPressure: number;
  /** Growth is capped at 1 (doubled) before weighting. */
  memoryGrowth: number;
  /** Restarts are counted up to 3 (min(1, restarts/3)) before weighting. */
  restarts: number;
  /** OOM kills count up to 1 before weighting. */
  ooms: number;
}

export const DEFAULT_NEIGHBOUR_WEIGHTS: NeighbourWeights = {
  cpuOverRequest: 1,
  inflictedThrottling: 2,
  memoryPressure: 1,
  memoryGrowth: 0.25,
  restarts: 0.25,
  ooms: 0.5,
};

export interface NeighbourSettings {
  weights: NeighbourWeights;
  /** The raw value at which harm counts in full (the gate); below it the score shrinks towards 0. */
  severityFullAt: number;
  /** Workloads allowed in the `high` bucket per node (at least one): a 3-node cluster has at most one. */
  highPerNode: number;
}

export const DEFAULT_NEIGHBOUR_SETTINGS: NeighbourSettings = { weights: DEFAULT_NEIGHBOUR_WEIGHTS, severityFullAt: 0.25, highPerNode: 0.34 };

/** Buckets of a score, the values of the `nemutator.io/neighbour-*` labels. */
export type Bucket = 'low' | 'medium' | 'high';
export const MEDIUM_FROM = 40;
export const HIGH_FROM = 70;

export function bucketOf(score: number): Bucket {
  return score >= HIGH_FROM ? 'high' : score >= MEDIUM_FROM ? 'medium' : 'low';
}

/** How many workloads may be `high` in a cluster of `nodes` nodes. */
export function highSlots(nodes: number, highPerNode: number): number {
  return Math.max(1, Math.floor(Math.max(1, nodes) * highPerNode));
}

/** The weighted sum of a span's signals: the absolute "how much harm". */
export function rawOf(s: Signals, w: NeighbourWeights): number {
  return (
    w.cpuOverRequest * s.cpuOverRequest +
    w.inflictedThrottling * s.inflictedThrottling +
    w.memoryPressure * s.memoryPressure +
    w.memoryGrowth * Math.min(1, s.memoryGrowth) +
    w.restarts * Math.min(1, s.restarts / 3) +
    w.ooms * Math.min(1, s.ooms)
  );
}

export interface DimensionExplanation {
  score: number;
  bucket: Bucket;
  raw: number;
  /** Percentile rank of raw among the cluster's workloads (0..1). */
  rank: number;
  /** min(1, raw / severityFullAt). */
  gate: number;
  /** True when the score was held below `high` because the cluster's high slots were taken. */
  capped: boolean;
  signals: Signals;
}

export interface NeighbourExplanation {
  workload: WorkloadRef;
  pods: Array<{ name: string; node: string } & NeighbourScore>;
  scores: NeighbourScore;
  explain: Record<Dimension, DimensionExplanation>;
}

export interface NeighbourResult {
  nodes: number;
  highSlots: number;
  workloads: NeighbourExplanation[];
  lookup: NeighbourLookup;
}

function mean(xs: Signals[]): Signals {
  if (xs.length === 0) return NO_SIGNALS;
  const out = { ...NO_SIGNALS };
  for (const s of xs) for (const k of Object.keys(out) as Array<keyof Signals>) out[k] += s[k] / xs.length;
  return out;
}

const round3 = (x: number) => Math.round(x * 1000) / 1000;

/** The first index of `sorted` (ascending) whose value is ≥ x (`strict`: > x); binary search. */
function lowerBound(sorted: readonly number[], x: number, strict: boolean): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const v = sorted[mid]!;
    if (strict ? v > x : v >= x) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/**
 * Mid-rank percentile of `x` among the workloads' raws `sorted` (ascending), leaving out one
 * entry `own` (the workload itself; for a pod, its workload: a pod is ranked as if it stood in
 * for its workload). 0 = quieter than every other workload, 1 = louder than all.
 */
export function percentileRank(sorted: readonly number[], x: number, own: number | undefined): number {
  const others = sorted.length - (own === undefined ? 0 : 1);
  if (others <= 0) return x > 0 ? 1 : 0;
  let below = lowerBound(sorted, x, false);
  let equal = lowerBound(sorted, x, true) - below;
  if (own !== undefined) {
    if (own < x) below--;
    else if (own === x) equal--;
  }
  return Math.min(1, Math.max(0, (below + 0.5 * equal) / others));
}

interface Ranking {
  sorted: number[];
  /** The raw a workload or pod needs to be allowed `high` (the last high slot's raw). */
  highFloor: number;
}

function ranking(raws: number[], slots: number): Ranking {
  const sorted = [...raws].sort((a, b) => a - b);
  const highFloor = sorted.length === 0 ? Infinity : sorted[Math.max(0, sorted.length - slots)]!;
  return { sorted, highFloor };
}

function scoreOf(raw: number, r: Ranking, own: number, settings: NeighbourSettings): { score: number; rank: number; gate: number; capped: boolean } {
  const rank = percentileRank(r.sorted, raw, own);
  const gate = raw <= 0 ? 0 : Math.min(1, raw / settings.severityFullAt);
  let score = Math.round(100 * rank * gate);
  const capped = score >= HIGH_FROM && raw < r.highFloor;
  if (capped) score = HIGH_FROM - 1;
  return { score, rank, gate, capped };
}

/** A workload's span: the mean of its pods for now/usual, its worst pod for worst. */
function workloadSignals(pods: PodSignals[], d: Dimension, w: NeighbourWeights): Signals {
  if (d !== 'worst') return mean(pods.map((p) => p.signals[d]));
  let best = pods[0]!.signals.worst;
  for (const p of pods) if (rawOf(p.signals.worst, w) > rawOf(best, w)) best = p.signals.worst;
  return best;
}

const keyOf = (w: WorkloadRef) => `${w.namespace}/${w.kind}/${w.name}`;

/** One workload's explanation (and its exact raws, against which its pods are ranked). */
function explainWorkload(
  signals: Record<Dimension, Signals>,
  rankings: Record<Dimension, Ranking>,
  settings: NeighbourSettings,
): { explain: Record<Dimension, DimensionExplanation>; exact: Record<Dimension, number> } {
  const explain = {} as Record<Dimension, DimensionExplanation>;
  const exact = {} as Record<Dimension, number>;
  for (const d of DIMENSIONS) {
    const raw = rawOf(signals[d], settings.weights);
    exact[d] = raw;
    const s = scoreOf(raw, rankings[d], raw, settings);
    explain[d] = {
      score: s.score,
      bucket: bucketOf(s.score),
      raw: round3(raw),
      rank: round3(s.rank),
      gate: round3(s.gate),
      capped: s.capped,
      signals: rounded(signals[d]),
    };
  }
  return { explain, exact };
}

function groupByWorkload(pods: readonly PodSignals[]): PodSignals[][] {
  const groups = new Map<string, PodSignals[]>();
  for (const p of pods) {
    const k = keyOf(p.workload);
    const list = groups.get(k);
    if (list) list.push(p);
    else groups.set(k, [p]);
  }
  return [...groups.values()];
}

/** Scores every pod and workload against the cluster (`nodes`: how many nodes it has). */
export function scoreNeighbours(pods: readonly PodSignals[], nodes: number, settings: NeighbourSettings = DEFAULT_NEIGHBOUR_SETTINGS): NeighbourResult {
  const slots = highSlots(nodes, settings.highPerNode);
  const w = settings.weights;
  const spans = groupByWorkload(pods).map((list) => ({
    list,
    signals: Object.fromEntries(DIMENSIONS.map((d) => [d, workloadSignals(list, d, w)])) as Record<Dimension, Signals>,
  }));
  const rankings = Object.fromEntries(
    DIMENSIONS.map((d) => [
      d,
      ranking(
        spans.map((s) => rawOf(s.signals[d], w)),
        slots,
      ),
    ]),
  ) as Record<Dimension, Ranking>;
  const byPod = new Map<string, NeighbourScore>();
  const byWorkload = new Map<string, NeighbourScore>();
  const workloads: NeighbourExplanation[] = spans.map(({ list, signals }) => {
    const { explain, exact } = explainWorkload(signals, rankings, settings);
    const scores = { now: explain.now.score, usual: explain.usual.score, worst: explain.worst.score };
    byWorkload.set(keyOf(list[0]!.workload), scores);
    const podScores = list.map((p) => {
      const ps: NeighbourScore = {
        now: scoreOf(rawOf(p.signals.now, w), rankings.now, exact.now, settings).score,
        usual: scoreOf(rawOf(p.signals.usual, w), rankings.usual, exact.usual, settings).score,
        worst: scoreOf(rawOf(p.signals.worst, w), rankings.worst, exact.worst, settings).score,
      };
      byPod.set(`${p.namespace}/${p.name}`, ps);
      return { name: p.name, node: p.node, ...ps };
    });
    return { workload: list[0]!.workload, pods: podScores, scores, explain };
  });
  workloads.sort((a, b) => b.scores.worst - a.scores.worst || b.explain.worst.raw - a.explain.worst.raw || (keyOf(a.workload) < keyOf(b.workload) ? -1 : 1));
  return {
    nodes,
    highSlots: slots,
    workloads,
    lookup: {
      forPod: (namespace, name) => byPod.get(`${namespace}/${name}`),
      forWorkload: (namespace, kind, name) => byWorkload.get(`${namespace}/${kind}/${name}`),
    },
  };
}

function rounded(s: Signals): Signals {
  return {
    cpuOverRequest: round3(s.cpuOverRequest),
    inflictedThrottling: round3(s.inflictedThrottling),
    memoryPressure: round3(s.memoryPressure),
    memoryGrowth: round3(s.memoryGrowth),
    restarts: s.restarts,
    ooms: s.ooms,
  };
}
