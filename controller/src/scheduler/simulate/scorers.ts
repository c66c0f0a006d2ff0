/**
 * The scorers the simulator compares, each giving a node a score 0..100 for a pod (the
 * scale of kube-scheduler's in-tree plugins; an extender's 0..10 is multiplied by 10, as
 * schedule_one.go does for weight 1):
 *
 * - `default`: kube-scheduler's default profile for resources — NodeResourcesFit with the
 *   LeastAllocated strategy plus NodeResourcesBalancedAllocation, both weight 1, on
 *   requests (k/k pkg/scheduler/framework/plugins/noderesources: least_allocated.go
 *   `(capacity − requested) · 100 / capacity` averaged over cpu and memory;
 *   balanced_allocation.go `(1 − |f_cpu − f_mem| / 2) · 100`).
 * - `trimaran`: TargetLoadPacking (kubernetes-sigs/scheduler-plugins, KEP 61): U = node
 *   CPU utilisation % from the last metrics + the pod's predicted CPU %, score
 *   `(100 − X)·U/X + X` for U ≤ X, `X·(100 − U)/(100 − X)` for X < U ≤ 100, 0 above, X = 40.
 *   Predicted CPU = request × 1.5 (its defaultRequestsMultiplier for pods without limits);
 *   pods placed since the metrics count at that prediction; stale metrics score the minimum.
 * - `nemutator`: `scoreNode` (controller/src/scheduler/score.ts) × 10, fed by the simulated
 *   agent reports exactly as the extender is fed by the real ones.
 */
import { type NodeFacts, type PodFacts, type Resources, scoreNode, type ScoreWeights, type Season } from '../score.ts';

export type ScorerName = 'default' | 'trimaran' | 'nemutator';
export const SCORERS: ScorerName[] = ['default', 'trimaran', 'nemutator'];

/** What a scorer may know about a node: the scheduler's cache and the last agent report. */
export interface NodeView {
  name: string;
  allocatable: Resources;
  /** Requests of bound pods, including the ones bound this very cycle (the scheduler cache). */
  requested: Resources;
  report?: { usage: Resources; psi: { cpuSome10: number; memorySome10: number }; ageMs: number };
  /** Pods bound since the report was sampled, for anti-herding. */
  placedSinceReport: PodView[];
  /** Per workload: pods of it on the node. */
  familiars(workload: number): number;
  residentsNeighbourWorst(): number[];
  /** Sum of the residents' predicted usage (telemetry profile). */
  residentsPredicted(): Resources;
}

export interface PodView {
  workload: number;
  requests: Resources;
  /** Telemetry's expected real usage of a pod of this workload. */
  predicted: Resources;
  neighbourWorst: number;
}

export interface ScoreInput {
  season: Season;
  staleAfterMs: number;
  /** Nemutator only: weights other than DEFAULT_WEIGHTS (for experiments; the bench uses the defaults). */
  weights?: Partial<ScoreWeights>;
}

export type Scorer = (pod: PodView, node: NodeView, input: ScoreInput) => number;

const MAX = 100;

function leastRequested(requested: number, capacity: number): number {
  if (capacity === 0 || requested > capacity) return 0;
  return Math.trunc(((capacity - requested) * MAX) / capacity);
}

/** NodeResourcesFit (LeastAllocated, cpu and memory weight 1) + NodeResourcesBalancedAllocation. */
export function defaultScore(pod: PodView, node: NodeView): number {
  const cpu = node.requested.cpuMillis + pod.requests.cpuMillis;
  const mem = node.requested.memoryBytes + pod.requests.memoryBytes;
  const least = Math.trunc((leastRequested(cpu, node.allocatable.cpuMillis) + leastRequested(mem, node.allocatable.memoryBytes)) / 2);
  const fc = Math.min(1, cpu / node.allocatable.cpuMillis);
  const fm = Math.min(1, mem / node.allocatable.memoryBytes);
  const balanced = Math.trunc((1 - Math.abs(fc - fm) / 2) * MAX);
  return least + balanced;
}

export const TLP_TARGET = 40;
export const TLP_REQUESTS_MULTIPLIER = 1.5;

/** TargetLoadPacking's published score for utilisation U % (with the pod) and target X %. */
export function targetLoadPacking(u: number, x = TLP_TARGET): number {
  if (u > 100) return 0;
  if (u <= x) return Math.round(((100 - x) * u) / x + x);
  return Math.round((x * (100 - u)) / (100 - x));
}

export function trimaranScore(pod: PodView, node: NodeView, input: ScoreInput): number {
  if (!node.report || node.report.ageMs > input.staleAfterMs) return 0;
  const predict = (p: PodView) => p.requests.cpuMillis * TLP_REQUESTS_MULTIPLIER;
  const placed = node.placedSinceReport.reduce((s, p) => s + predict(p), 0);
  const u = ((node.report.usage.cpuMillis + placed + predict(pod)) * 100) / node.allocatable.cpuMillis;
  return targetLoadPacking(u);
}

/** The facts the extender gathers, built from the simulator's view of a node. */
export function nodeFacts(pod: PodView, node: NodeView): NodeFacts {
  const placed = node.placedSinceReport.reduce(
    (s, p) => ({ cpuMillis: s.cpuMillis + p.predicted.cpuMillis, memoryBytes: s.memoryBytes + p.predicted.memoryBytes }),
    { cpuMillis: 0, memoryBytes: 0 },
  );
  return {
    name: node.name,
    allocatable: node.allocatable,
    requested: node.requested,
    ...(node.report ? { usage: node.report.usage, reportAgeMs: node.report.ageMs, psi: node.report.psi } : {}),
    placedSinceReport: placed,
    familiars: node.familiars(pod.workload),
    residentsNeighbourWorst: node.residentsNeighbourWorst(),
    residentsPredicted: node.residentsPredicted(),
  };
}

export function nemutatorScore(pod: PodView, node: NodeView, input: ScoreInput): number {
  const podFacts: PodFacts = { requests: pod.requests, predicted: pod.predicted, neighbourWorst: pod.neighbourWorst };
  return (
    scoreNode(podFacts, nodeFacts(pod, node), {
      season: input.season,
      staleAfterMs: input.staleAfterMs,
      ...(input.weights ? { weights: input.weights } : {}),
    }) * 10
  );
}

export const scorers: Record<ScorerName, Scorer> = {
  default: (pod, node) => defaultScore(pod, node),
  trimaran: trimaranScore,
  nemutator: nemutatorScore,
};
