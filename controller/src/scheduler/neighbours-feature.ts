/**
 * Bad-neighbour scores as a controller feature: the history fed by every NodeReport the fleet
 * registry stores, the scorer (the `NeighbourLookup` the scheduler extender reads), the label
 * writer (leader only, when `neighbourLabels` is on and there is a cluster) and the route
 *
 *   GET /api/v1/neighbours[?namespace=NS]   every workload's scores, each explained
 */
import type { Logger } from '#common/log.js';

import type { SkipRules } from '../admission/skip-rules.ts';
import type { ControllerConfig } from '../config.ts';
import type { FleetRegistry } from '../fleet/registry.ts';
import type { ClusterModel } from '../model/model.ts';
import type { ClusterClient, LabelledKind } from '../mutations/cluster.ts';
import type { MutationLog } from '../mutations/log.ts';
import { parseQuantity } from '../mutators/quantity.ts';
import type { KubeObject } from '../mutators/types.ts';
import type { Router } from '../server/router.ts';
import {
  DEFAULT_NEIGHBOUR_SETTINGS,
  HIGH_FROM,
  MEDIUM_FROM,
  type NeighbourLookup,
  type NeighbourResult,
  type NeighbourScore,
  type NeighbourSettings,
  scoreNeighbours,
} from './neighbours.ts';
import { NeighbourHistory, type PodFacts, type PodFactsLookup } from './neighbours-history.ts';
import { type LabelTarget, NeighbourLabelWriter } from './neighbours-labels.ts';

type Obj = ReturnType<ClusterModel['list']>[number];

/** How often the scores are recomputed in the background (when reports arrived). */
export const SCORE_REFRESH_MS = 10_000;

/** A pod's requests, restarts and workload, from the cluster model's pod informer. */
export function podFactsFromModel(model: ClusterModel): PodFactsLookup {
  return (namespace, name) => {
    const pod = model.pod(namespace, name);
    if (!pod) return undefined;
    const containers = (pod.spec?.containers ?? []) as Array<{ resources?: { requests?: Record<string, string> } }>;
    const statuses = ((pod.status?.containerStatuses ?? []) as Array<{ restartCount?: number; lastState?: { terminated?: { reason?: string } } }>) ?? [];
    const facts: PodFacts = {
      workload: model.workloadOf(pod),
      cpuRequestCores: containers.reduce((a, c) => a + (parseQuantity(c.resources?.requests?.cpu) ?? 0), 0),
      restarts: statuses.reduce((a, s) => a + (s.restartCount ?? 0), 0),
      oomKilled: statuses.some((s) => s.lastState?.terminated?.reason === 'OOMKilled'),
    };
    return facts;
  };
}

const WORKLOAD_LISTS = [
  ['deployments', 'Deployment'],
  ['statefulsets', 'StatefulSet'],
  ['daemonsets', 'DaemonSet'],
] as const;

/** Namespaces the labels never go to, like the webhook's: the control plane's and Nemutator's own. */
export function excludedNamespaces(ownNamespace: string): Set<string> {
  return new Set(['kube-system', 'kube-node-lease', ownNamespace]);
}

/**
 * Every pod and workload the model holds, as label targets (a pod with its workload's object),
 * except those of `excluded` namespaces and mirror pods (the kubelet's static pods).
 */
export function labelTargetsFromModel(model: ClusterModel, excluded: ReadonlySet<string> = new Set()): () => Iterable<LabelTarget> {
  return function* targets() {
    const workloads = new Map<string, Obj>();
    for (const [list, kind] of WORKLOAD_LISTS) {
      for (const o of model.list(list)) {
        if (excluded.has(o.metadata?.namespace ?? '')) continue;
        workloads.set(`${o.metadata?.namespace}/${kind}/${o.metadata?.name}`, o);
        yield { kind: kind as LabelledKind, object: o as unknown as KubeObject };
      }
    }
    for (const p of model.list('pods')) {
      if (p.metadata?.deletionTimestamp || excluded.has(p.metadata?.namespace ?? '') || p.metadata?.annotations?.['kubernetes.io/config.mirror']) continue;
      const w = model.workloadOf(p);
      const object = workloads.get(`${w.namespace}/${w.kind}/${w.name}`);
      yield {
        kind: 'Pod',
        object: p as unknown as KubeObject,
        ...(w.kind !== 'Pod' ? { workload: { kind: w.kind, name: w.name, ...(object ? { object: object as unknown as KubeObject } : {}) } } : {}),
      };
    }
  };
}

/**
 * The scores of the latest reports. Scoring a large cluster takes a while (every pod's spans,
 * then a ranking), so the extender's lookups read the last result and never wait for a new
 * one; `result()` (the REST route, the label writer) and the feature's background refresh
 * recompute it when reports arrived since, at most once a second.
 */
export class NeighbourScorer implements NeighbourLookup {
  private cached: { at: number; result: NeighbourResult } | undefined;
  private dirty = true;

  constructor(
    readonly history: NeighbourHistory,
    private readonly nodeCount: () => number,
    private readonly settings: NeighbourSettings = DEFAULT_NEIGHBOUR_SETTINGS,
    private readonly now: () => number = Date.now,
  ) {}

  /** A new report arrived: the next refresh recomputes. */
  changed(): void {
    this.dirty = true;
  }

  result(): NeighbourResult {
    const at = this.now();
    if (!this.cached || (this.dirty && at - this.cached.at >= 1000) || at - this.cached.at >= 30_000) {
      const nodes = Math.max(this.history.nodes(at), this.nodeCount());
      this.dirty = false;
      this.cached = { at, result: scoreNeighbours(this.history.signals(at), nodes, this.settings) };
    }
    return this.cached.result;
  }

  /** The last result as it is (computed once if there is none yet). */
  private last(): NeighbourResult {
    return this.cached?.result ?? this.result();
  }

  forPod(namespace: string, name: string): NeighbourScore | undefined {
    return this.last().lookup.forPod(namespace, name);
  }

  forWorkload(namespace: string, kind: string, name: string): NeighbourScore | undefined {
    return this.last().lookup.forWorkload(namespace, kind, name);
  }
}

export interface NeighbourFeature {
  scorer: NeighbourScorer;
  /** Undefined unless neighbourLabels is on and there is a cluster. */
  writer?: NeighbourLabelWriter;
  /** Stops listening and labelling; resolves once a pass in progress has finished. */
  stop(): Promise<void>;
}

export interface NeighbourDeps {
  config: ControllerConfig;
  registry: FleetRegistry;
  log: Logger;
  isLeader: () => boolean;
  model?: ClusterModel;
  cluster?: ClusterClient;
  mutationLog: MutationLog;
  skipRules?: SkipRules;
  now?: () => number;
}

export function neighboursFeature(deps: NeighbourDeps): NeighbourFeature {
  const { config, model } = deps;
  const now = deps.now ?? Date.now;
  const history = new NeighbourHistory({ nowMs: config.neighbourNowWindow, windowMs: config.neighbourWindow, weights: DEFAULT_NEIGHBOUR_SETTINGS.weights });
  const facts: PodFactsLookup = model ? podFactsFromModel(model) : () => undefined;
  const scorer = new NeighbourScorer(history, () => model?.list('nodes').length ?? 0, DEFAULT_NEIGHBOUR_SETTINGS, now);
  const unsubscribe = deps.registry.onReport((node, report, at) => {
    history.ingest(node, report, facts, at);
    scorer.changed();
  });
  // Off the extender's path: lookups read what this refresh computed.
  const refresh = setInterval(() => scorer.result(), SCORE_REFRESH_MS);
  refresh.unref();
  let timer: NodeJS.Timeout | undefined;
  let writer: NeighbourLabelWriter | undefined;
  if (config.neighbourLabels && model && deps.cluster) {
    writer = new NeighbourLabelWriter({
      cluster: deps.cluster,
      mutationLog: deps.mutationLog,
      ...(deps.skipRules ? { skipRules: deps.skipRules } : {}),
      log: deps.log.child({ component: 'neighbour-labels' }),
      writesPerMinute: config.neighbourLabelWritesPerMinute,
      isLeader: deps.isLeader,
      targets: labelTargetsFromModel(model, excludedNamespaces(config.namespace)),
      scores: () => scorer,
      now,
    });
    const w = writer;
    timer = setInterval(
      () => void w.pass().catch((e: Error) => deps.log.warn({ err: e.message }, 'neighbour labels pass failed')),
      config.neighbourLabelInterval,
    );
    timer.unref();
  } else if (config.neighbourLabels) {
    deps.log.warn('neighbourLabels is on but there is no cluster (--kubeconfig or a pod): no labels are written');
  }
  return {
    scorer,
    ...(writer ? { writer } : {}),
    async stop() {
      unsubscribe();
      clearInterval(refresh);
      clearInterval(timer);
      await writer?.idle();
    },
  };
}

export function registerNeighbourRoutes(router: Router, feature: NeighbourFeature): void {
  router.get('/api/v1/neighbours', { verb: 'list', resource: 'neighbours', scope: 'query' }, (req) => {
    const result = feature.scorer.result();
    const namespace = req.query.get('namespace');
    return {
      nodes: result.nodes,
      highSlots: result.highSlots,
      buckets: { low: `0-${MEDIUM_FROM - 1}`, medium: `${MEDIUM_FROM}-${HIGH_FROM - 1}`, high: `${HIGH_FROM}-100` },
      items: namespace ? result.workloads.filter((w) => w.workload.namespace === namespace) : result.workloads,
      ...(feature.writer ? { labels: feature.writer.totals } : {}),
    };
  });
}
