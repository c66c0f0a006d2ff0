/**
 * The scheduler extender's two verbs over the facts the controller has: `prioritize` scores
 * every candidate node 0..10 with scoreNode (score.ts) and remembers the pod on the node it
 * scored best (anti-herding); `filter`, when enabled, refuses only nodes whose agent reports
 * memory pressure above a threshold or has been silent too long. Stale or missing agent data
 * give a neutral score, never an error.
 */
import type { FleetRegistry } from '../fleet/registry.ts';
import { type ClusterView, type FactsSources, type NeighbourLookup, NO_NEIGHBOURS, nodeFacts, podFacts, type UsageProfiles } from './extender-facts.ts';
import { PlacementMemory } from './extender-placements.ts';
import { type Candidates, type ExtenderFilterResult, filterResult, type HostPriority, MAX_EXTENDER_PRIORITY, type WirePod } from './extender-wire.ts';
import { type NodeFacts, type PodFacts, scoreNode, type ScoreWeights, type Season } from './score.ts';

export interface ExtenderSettings {
  /** A report older than this scores neutral (the registry's nodeStaleAfter). */
  staleAfterMs: number;
  /** 'auto': telemetry's current season (peak without telemetry). */
  season: 'auto' | Season;
  filter: { enabled: boolean; memoryPressure: number; silentAfterMs: number };
  placementTtlMs: number;
  weights?: Partial<ScoreWeights>;
}

export interface ExtenderOptions {
  registry: FleetRegistry;
  settings: ExtenderSettings;
  now?: () => number;
}

export class SchedulerExtender {
  readonly placements: PlacementMemory;
  private cluster: ClusterView | undefined;
  private profiles: UsageProfiles | undefined;
  private neighbours: NeighbourLookup = NO_NEIGHBOURS;
  private readonly now: () => number;
  private boundTo: ((ns: string, name: string) => string | undefined) | undefined;
  /** Resolves once the cluster's objects are listed (at once when there is no cluster). */
  clusterReady: Promise<void> = Promise.resolve();

  constructor(private readonly opts: ExtenderOptions) {
    this.now = opts.now ?? Date.now;
    this.placements = new PlacementMemory(opts.settings.placementTtlMs, this.now, (ns, name) => this.boundTo?.(ns, name));
  }

  /** The cluster's objects (allocatable, bound pods), once there is a cluster. */
  useCluster(view: ClusterView, boundTo?: (namespace: string, name: string) => string | undefined, ready?: Promise<void>): void {
    this.cluster = view;
    this.boundTo = boundTo;
    if (ready) this.clusterReady = ready;
  }

  /** Telemetry: the season and workload usage profiles. */
  useProfiles(profiles: UsageProfiles): void {
    this.profiles = profiles;
  }

  /** The bad-neighbour scores (neighbours.ts). */
  useNeighbours(lookup: NeighbourLookup): void {
    this.neighbours = lookup;
  }

  season(): Season {
    const s = this.opts.settings.season;
    if (s !== 'auto') return s;
    return this.profiles?.season() === 'off-peak' ? 'offpeak' : 'peak';
  }

  /** The sources for one call, at one instant (every node's report age is measured from the same now). */
  private sources(): FactsSources {
    const at = this.now();
    return {
      registry: this.opts.registry,
      placements: this.placements,
      neighbours: this.neighbours,
      cluster: this.cluster,
      profiles: this.profiles,
      now: () => at,
    };
  }

  /**
   * Scores every candidate; the pod is remembered on the best one (ties: the first, as a
   * scheduler with nothing else to go on would pick). It is a guess — kube-scheduler adds its
   * own plugins' scores and breaks ties at random — which the cluster's binding corrects.
   */
  prioritize(pod: WirePod, candidates: Candidates): HostPriority[] {
    const season = this.season();
    const src = this.sources();
    const incoming = podFacts(pod, src);
    const ctx = { season, staleAfterMs: this.opts.settings.staleAfterMs, ...(this.opts.settings.weights ? { weights: this.opts.settings.weights } : {}) };
    const out: HostPriority[] = [];
    let best: { facts: NodeFacts; score: number } | undefined;
    candidates.names.forEach((name, i) => {
      const facts = nodeFacts(name, candidates.nodes?.[i], incoming, src);
      const score = clampScore(scoreNode(incoming, facts, ctx));
      out.push({ Host: name, Score: score });
      if (!best || score > best.score) best = { facts, score };
    });
    if (best) this.remember(pod, incoming, best.facts.name);
    return out;
  }

  private remember(pod: WirePod, incoming: PodFacts & { workload?: string }, node: string): void {
    const name = pod.metadata?.name;
    if (!name) return;
    this.placements.place(node, {
      namespace: pod.metadata?.namespace ?? 'default',
      name,
      uid: pod.metadata?.uid ?? '',
      predicted: incoming.predicted,
      requests: incoming.requests,
      workload: incoming.workload,
    });
  }

  /** Passes every node unless the filter is enabled; then refuses memory pressure and silent agents only. */
  filter(_pod: WirePod, candidates: Candidates): ExtenderFilterResult {
    const f = this.opts.settings.filter;
    const passed = new Set<string>();
    const failed: Record<string, string> = {};
    for (const name of candidates.names) {
      const why = f.enabled ? this.refusal(name) : undefined;
      if (why) failed[name] = why;
      else passed.add(name);
    }
    return filterResult(candidates, passed, failed);
  }

  private refusal(name: string): string | undefined {
    const f = this.opts.settings.filter;
    const e = this.opts.registry.get(name);
    // A node no agent ever spoke for is not Nemutator's to refuse.
    if (!e) return undefined;
    const age = e.lastReportAt === undefined ? this.now() - e.connectedAt : this.now() - e.lastReportAt;
    if (age > f.silentAfterMs) return `nemutator: the agent on ${name} has been silent for ${Math.round(age / 1000)} s`;
    const psi = e.report?.node?.memoryPressure?.someAvg10;
    if (psi !== undefined && psi !== null && psi > f.memoryPressure)
      return `nemutator: memory pressure on ${name} is ${psi.toFixed(1)}% (some, avg10), above ${f.memoryPressure}%`;
    return undefined;
  }
}

/** Go decodes Score as int64: anything but an integer 0..10 would lose every score of the reply. */
export function clampScore(s: number): number {
  if (!Number.isFinite(s)) return Math.round(MAX_EXTENDER_PRIORITY / 2);
  return Math.max(0, Math.min(MAX_EXTENDER_PRIORITY, Math.round(s)));
}
