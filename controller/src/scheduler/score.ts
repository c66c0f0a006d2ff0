/**
 * How much Nemutator likes a node for a pod: a pure function from what the agents and the
 * neighbour scores say about a node to kube-scheduler's extender score, an INTEGER 0..10
 * (kube-scheduler decodes `Score` as int64; a float drops the whole reply silently).
 *
 * Headroom first: a node the pod fits with headroom (its predicted peak load stays under
 * headroomCpu / headroomMemory) scores 4..10, a node it does not fit 0..3, whatever else is
 * true; inside each tier weighted terms (each −1..1) order the nodes:
 *
 *   fits:          round(7 + 3 · clamp(load·loadTerm − rest, −1, 1))
 *   does not fit:  round(1.5 + 1.5 · clamp(roomTerm − rest, −1, 1))
 *   rest = psi·pressureTerm + familiars·familiarsTerm + neighbours·conflictTerm
 *
 * - predicted load: `(max(usage + placedSinceReport, residentsPredicted) + pod.predicted) /
 *   allocatable` per resource; `pod.predicted` and `residentsPredicted` are PEAK predictions
 *   (telemetry's peak brainset, a high quantile) whatever the hour: a pod placed at night
 *   lives into the peak.
 * - loadTerm (season): peak SPREADS — the least loaded node that fits wins
 *   (peakSpread), near-ties going to the node whose requests the pod fills best
 *   (peakRequestFit) so whole nodes stay free for large pods; off-peak PACKS, mildly — the
 *   fuller node that fits wins (±offPeakPack), so nodes drain at night but not so fast that
 *   the morning has to grow them back through pending pods.
 * - roomTerm: among nodes the pod does not fit, the one whose residents leave the most room.
 * - pressureTerm: the node's worse PSI (cpu or memory `some` avg10), 0 at 0 %, 1 at
 *   `psiSaturation` % and above.
 * - familiarsTerm: replicas of the pod's own workload already on the node, `min(n, cap)/cap`.
 * - conflictTerm: `above(own worst) · above(loudest resident's worst)`, above(v) counting from
 *   `neighbourThreshold`: two noisy pods keep apart at every season; ordinary pods share
 *   freely. An unknown own score counts as `unknownNeighbourWorst` (the median).
 *
 * Stale or missing agent data (no usage, or reportAgeMs undefined or older than
 * staleAfterMs) gives the neutral 5 moved only by the familiars and neighbour terms (which
 * do not come from the agent); it never throws.
 * `placedSinceReport` is the anti-herding part: pods placed after the report are counted
 * at their predicted usage, so a burst does not pile onto the node that looked empty.
 *
 * The weights and their reasons are in docs/scheduler-scoring.md; the scheduling simulator
 * (docs/scheduler-simulator.md) is how they were chosen.
 */

export interface Resources {
  cpuMillis: number;
  memoryBytes: number;
}
export type Season = 'peak' | 'offpeak';

export interface NodeFacts {
  name: string;
  allocatable: Resources;
  /** Sum of requests of pods bound to the node (including ones placed since the report). */
  requested: Resources;
  /** The agent's last reported real usage; undefined = no data. */
  usage?: Resources;
  /** Age of that report; stale or missing → neutral load and pressure terms. */
  reportAgeMs?: number;
  /** % (0..100) from the agent's Pressure (PSI `some` avg10). */
  psi?: { cpuSome10: number; memorySome10: number };
  /** Predicted usage of pods placed since the report (anti-herding). */
  placedSinceReport: Resources;
  /** Pods of the incoming pod's workload already on the node. */
  familiars: number;
  /** `worst` neighbour score (0..100) of each resident. */
  residentsNeighbourWorst: number[];
  /**
   * Optional (an addition to the shared contract): the sum of the residents' predicted usage
   * (the same telemetry profile as PodFacts.predicted). Off-peak, residents are quiet; this is
   * what they will use when their own busy hours come, so packing does not overheat the node
   * later. Undefined = only the report counts.
   */
  residentsPredicted?: Resources;
}

export interface PodFacts {
  requests: Resources;
  /** Expected real usage at the workload's PEAK, whatever the hour (telemetry's peak brainset: a high CPU quantile + margin, max memory + margin; else requests). */
  predicted: Resources;
  /** The incoming pod's own workload `worst` score, if known. */
  neighbourWorst?: number;
}

export interface ScoringContext {
  season: Season;
  staleAfterMs: number;
  weights?: Partial<ScoreWeights>;
}

export interface ScoreWeights {
  /** Weight of the season's load term (spread at peak, pack off-peak). */
  load: number;
  /** Weight of the node's pressure (PSI) penalty. */
  psi: number;
  /** PSI `some` avg10 % at which the pressure penalty is full. */
  psiSaturation: number;
  /** Weight of the familiars penalty. */
  familiars: number;
  /** Familiars at which the familiars penalty is full. */
  familiarsCap: number;
  /** Weight of the bad-neighbour conflict penalty. */
  neighbours: number;
  /** `worst` scores at or below this do not conflict at all; above it they count from 0 (at it) to 1 (at 100). */
  neighbourThreshold: number;
  /** The incoming pod's own `worst` when unknown (the median of a percentile rank). */
  unknownNeighbourWorst: number;
  /** Peak: weight of spreading by predicted load (the least loaded node that fits wins). */
  peakSpread: number;
  /** Peak: weight of preferring the node whose requests the pod fills best (keeps whole nodes for large pods). */
  peakRequestFit: number;
  /**
   * Peak: weight of packing by predicted load instead (0 by default: issue 17 asks peak to
   * spread). With peakSpread 0 it makes peak pack like off-peak; docs/scheduler-scoring.md
   * has what that did in the simulator.
   */
  peakPack: number;
  /** Off-peak: how much fuller fitting nodes are preferred, the load term going from −offPeakPack (empty) to +offPeakPack (just fits). */
  offPeakPack: number;
  /** Fraction of allocatable CPU the predicted real usage may reach for the pod to "fit with headroom". */
  headroomCpu: number;
  /** Same for memory. */
  headroomMemory: number;
}

/** Defaults; docs/scheduler-scoring.md gives the reason for each. */
export const DEFAULT_WEIGHTS: Readonly<ScoreWeights> = Object.freeze({
  load: 1,
  psi: 0.3,
  psiSaturation: 25,
  familiars: 0.6,
  familiarsCap: 3,
  neighbours: 1.5,
  neighbourThreshold: 70,
  unknownNeighbourWorst: 50,
  peakSpread: 0.7,
  peakRequestFit: 0.3,
  peakPack: 0,
  offPeakPack: 0.25,
  headroomCpu: 0.9,
  headroomMemory: 0.8,
});

export const NEUTRAL_SCORE = 5;
export const MAX_SCORE = 10;

const ZERO: Resources = Object.freeze({ cpuMillis: 0, memoryBytes: 0 });
const clamp = (v: number, lo: number, hi: number): number => (Number.isFinite(v) ? Math.min(hi, Math.max(lo, v)) : 0);
const ratio = (used: number, total: number): number => (total > 0 ? used / total : 1);

/** True when the agent's report can be trusted: present and younger than staleAfterMs. */
export function hasFreshReport(node: NodeFacts, staleAfterMs: number): boolean {
  return node.usage !== undefined && node.reportAgeMs !== undefined && node.reportAgeMs >= 0 && node.reportAgeMs <= staleAfterMs;
}

/**
 * The node's predicted real load with the pod on it, per resource, as a fraction of
 * allocatable: the larger of (reported usage + placed since the report) and the residents'
 * predicted usage, plus the pod's predicted usage. Without a report, the node's requests
 * stand in for its usage.
 */
export function predictedLoad(pod: PodFacts, node: NodeFacts): { cpu: number; memory: number } {
  const base = node.usage ?? node.requested;
  const placed = (node.usage && node.placedSinceReport) || ZERO;
  const expected = node.residentsPredicted ?? ZERO;
  const cpu = Math.max(base.cpuMillis + placed.cpuMillis, expected.cpuMillis);
  const memory = Math.max(base.memoryBytes + placed.memoryBytes, expected.memoryBytes);
  return {
    cpu: ratio(cpu + pod.predicted.cpuMillis, node.allocatable.cpuMillis),
    memory: ratio(memory + pod.predicted.memoryBytes, node.allocatable.memoryBytes),
  };
}

/**
 * Whether the pod's predicted real usage fits on the node and leaves the headroom free. It
 * uses the report it is given, however old: callers that care about staleness (the
 * extender's filter) check hasFreshReport first.
 */
export function fitsWithHeadroom(pod: PodFacts, node: NodeFacts, weights: Partial<ScoreWeights> = {}): boolean {
  const w = { ...DEFAULT_WEIGHTS, ...weights };
  const load = predictedLoad(pod, node);
  return load.cpu <= w.headroomCpu && load.memory <= w.headroomMemory;
}

/** How full the node would be with the pod, as a fraction of the headroom (1 = just fits). */
function fullness(pod: PodFacts, node: NodeFacts, w: ScoreWeights): number {
  const load = predictedLoad(pod, node);
  return Math.max(load.cpu / w.headroomCpu, load.memory / w.headroomMemory);
}

/**
 * The season's term for a node the pod fits with headroom, −1..1.
 * Peak SPREADS by load — `peakSpread·(1 − 2·load)`, the least loaded node wins — and breaks
 * near-ties toward the node whose requests the pod fills best, `peakRequestFit·(2·requested − 1)`
 * (requested = the node's requests with the pod / allocatable): whole nodes stay free for
 * large pods instead of a pending pod and a scale-up. Off-peak PACKS, mildly:
 * `offPeakPack·(2·fullness − 1)`, the fuller node that fits wins.
 */
export function loadTerm(pod: PodFacts, node: NodeFacts, season: Season, w: ScoreWeights): number {
  if (season === 'peak') {
    const load = predictedLoad(pod, node);
    const cpu = ratio(node.requested.cpuMillis + pod.requests.cpuMillis, node.allocatable.cpuMillis);
    const memory = ratio(node.requested.memoryBytes + pod.requests.memoryBytes, node.allocatable.memoryBytes);
    const requested = clamp(Math.max(cpu, memory), 0, 1);
    const spread = w.peakSpread * (1 - 2 * Math.max(load.cpu, load.memory));
    return clamp(spread + w.peakRequestFit * (2 * requested - 1) + w.peakPack * clamp(fullness(pod, node, w), 0, 1), -1, 1);
  }
  return clamp(w.offPeakPack * (2 * clamp(fullness(pod, node, w), 0, 1) - 1), -1, 1);
}

/** For a node the pod does not fit with headroom, −1..1: the more room its residents leave, the higher. */
export function roomTerm(node: NodeFacts, w: ScoreWeights): number {
  const zero: PodFacts = { requests: ZERO, predicted: ZERO };
  return 1 - 2 * clamp(fullness(zero, node, w), 0, 1);
}

function pressureTerm(node: NodeFacts, w: ScoreWeights): number {
  if (!node.psi) return 0;
  return clamp(Math.max(node.psi.cpuSome10, node.psi.memorySome10) / w.psiSaturation, 0, 1);
}

function familiarsTerm(node: NodeFacts, w: ScoreWeights): number {
  return w.familiarsCap > 0 ? clamp(node.familiars / w.familiarsCap, 0, 1) : 0;
}

/** How much the incoming pod and the node's loudest resident would bother each other, 0..1. */
export function conflictTerm(pod: PodFacts, node: NodeFacts, w: ScoreWeights): number {
  const residents = node.residentsNeighbourWorst ?? [];
  if (residents.length === 0) return 0;
  const t = clamp(w.neighbourThreshold, 0, 99);
  const above = (v: number) => clamp((v - t) / (100 - t), 0, 1);
  const own = above(pod.neighbourWorst ?? w.unknownNeighbourWorst);
  const loudest = above(residents.reduce((m, v) => Math.max(m, v), 0));
  return own * loudest;
}

/** The node's score for the pod: an integer 0..10, 5 when nothing is known. Never throws. */
export function scoreNode(pod: PodFacts, node: NodeFacts, ctx: ScoringContext): number {
  const w: ScoreWeights = { ...DEFAULT_WEIGHTS, ...ctx.weights };
  const penalties = w.familiars * familiarsTerm(node, w) + w.neighbours * conflictTerm(pod, node, w);
  if (!hasFreshReport(node, ctx.staleAfterMs)) return toScore(NEUTRAL_SCORE, NEUTRAL_SCORE, -penalties, 0, MAX_SCORE);
  const rest = penalties + w.psi * pressureTerm(node, w);
  if (fitsWithHeadroom(pod, node, w)) return toScore(FITS_MID, FITS_HALF, w.load * loadTerm(pod, node, ctx.season, w) - rest, FITS_MIN, MAX_SCORE);
  return toScore(CROWDED_MID, CROWDED_HALF, roomTerm(node, w) - rest, 0, CROWDED_MAX);
}

/** The tiers: a node that fits with headroom scores 4..10, one that does not 0..3, whatever else is true. */
const FITS_MIN = 4;
const FITS_MID = 7;
const FITS_HALF = 3;
const CROWDED_MAX = 3;
const CROWDED_MID = 1.5;
const CROWDED_HALF = 1.5;

function toScore(mid: number, half: number, raw: number, lo: number, hi: number): number {
  return Math.round(clamp(mid + half * clamp(raw, -1, 1), lo, hi));
}
