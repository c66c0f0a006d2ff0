/**
 * Telemetry as a controller feature: the background-refreshed Telemetry, its
 * RecommendationSource for admission, the cluster model (when there is a cluster), the
 * season-flip resize ladder, and the REST routes:
 *
 *   GET  /api/v1/seasons                 hour-of-week schedule, current season, brainsets
 *        ?namespace=&kind=&name=          one workload's hour-of-week profile
 *   GET  /api/v1/telemetry               statistics per workload container (and per container with ?containers=true)
 *   GET  /api/v1/recommendations         the recommendation of every workload container for both seasons
 *   GET  /api/v1/whatif                  current vs recommended requests, savings and risk
 *   GET  /api/v1/model                   the cluster model (nodes, workloads, pods) with usage
 *   GET  /api/v1/model/export            the same as a JSON file download
 *   POST /api/v1/telemetry/refresh       refresh now
 *   GET  /api/v1/resizes                 season-flip resize actions so far
 *   POST /api/v1/resizes/flip            flip now (?season=peak|off-peak, ?dryRun=true)
 *   POST /api/v1/resizes/{id}/rollback   resize a pod back
 */
import { Gauge } from 'prom-client';

import { ErrorCodes, NemuError } from '#common/errors.js';
import { loadKubeConfig } from '#common/kube.js';

import type { ControllerParts } from '../app.ts';
import { ClusterModel } from '../model/model.ts';
import type { MutationLog } from '../mutations/log.ts';
import type { RecommendationSource } from '../mutators/types.ts';
import { ResizeLadder } from '../resize/ladder.ts';
import type { Router } from '../server/router.ts';
import { recommend } from './engine.ts';
import { PrometheusClient } from './prometheus.ts';
import type { Clock, Season } from './seasons.ts';
import { Telemetry, telemetrySettings } from './service.ts';
import { resourcesOf, TelemetrySource } from './source.ts';
import { type OwnerLookup, type Snapshot, workloadKey } from './statistics.ts';
import { computeWhatIf, currentFromPrometheus, type CurrentRequests } from './whatif.ts';

export interface TelemetryFeature {
  telemetry: Telemetry;
  source: RecommendationSource;
  model?: ClusterModel;
  ladder?: ResizeLadder;
  stop(): Promise<void>;
}

/** Tests move time: the clock the next feature is built with. */
export const telemetryTestHooks: { clock?: Clock } = {};

/**
 * Builds the telemetry feature of one controller (each call starts one: call it once, and hand
 * the result to registerTelemetryRoutes); undefined when no prometheusUrl is set.
 */
export async function telemetryFeature(parts: ControllerParts, mutationLog?: MutationLog): Promise<TelemetryFeature | undefined> {
  const { config } = parts;
  if (!config.prometheusUrl) return undefined;
  const log = parts.log.child({ component: 'telemetry' });
  const settings = telemetrySettings(config);
  const prom = new PrometheusClient(config.prometheusUrl, { timeoutMs: settings.timeoutMs });
  const kc = loadKubeConfig(config.kubeconfig);
  // The model's first list runs in the background: start-up never waits on the apiserver,
  // and a refresh awaits the owners only once its queries are done.
  const model = kc ? new ClusterModel(kc, parts.log.child({ component: 'model' })) : undefined;
  const owners = model?.start().then(
    () => model.ownerLookup,
    (e: unknown) => {
      log.warn({ err: (e as Error).message }, 'cluster model unavailable; owners come from kube_pod_owner and pod names');
      return undefined;
    },
  );
  const telemetry = new Telemetry(prom, settings, log, telemetryTestHooks.clock, owners);
  if (model) telemetry.replicaSetOwner = model.replicaSetOwner;
  const feature: TelemetryFeature = {
    telemetry,
    source: new TelemetrySource(telemetry),
    async stop() {
      telemetry.stop();
      await model?.stop();
    },
  };
  if (model) feature.model = model;
  if (kc && model && mutationLog) {
    feature.ladder = new ResizeLadder(kc, model, telemetry, mutationLog, parts.log.child({ component: 'resize' }), {
      mode: config.resizeOnSeasonFlip,
      ratePerMinute: config.resizeRate,
      minChange: config.resizeMinChange,
      isLeader: parts.isLeader,
    });
    feature.ladder.attach();
  }
  telemetryGauges(parts.metrics.registry, telemetry, prom);
  telemetry.start();
  parts.onStop(() => feature.stop());
  return feature;
}

/** Telemetry's own health on the controller's /metrics: up, queries issued, the season. */
function telemetryGauges(registry: ControllerParts['metrics']['registry'], telemetry: Telemetry, prom: PrometheusClient): void {
  const registers = [registry];
  new Gauge({
    name: 'nemutator_telemetry_up',
    help: '1 when the last telemetry refresh succeeded (admission uses its recommendations), else 0.',
    registers,
    collect() {
      this.set(telemetry.lastError || !telemetry.snapshot ? 0 : 1);
    },
  });
  new Gauge({
    name: 'nemutator_telemetry_prometheus_queries',
    help: 'Prometheus queries telemetry has issued since start.',
    registers,
    collect() {
      this.set(prom.queries);
    },
  });
  new Gauge({
    name: 'nemutator_season',
    help: 'The current season: 1 for peak or off-peak.',
    labelNames: ['season'],
    registers,
    collect() {
      const now = telemetry.currentSeason();
      for (const s of ['peak', 'off-peak']) this.set({ season: s }, s === now ? 1 : 0);
    },
  });
}

export function currentFromModel(model: ClusterModel): CurrentRequests {
  // One pass over the pods: the first pod of each workload speaks for its template.
  const index = new Map<string, { requests: Record<string, string>; limits: Record<string, string> }>();
  for (const p of model.list('pods')) {
    const ref = model.workloadOf(p);
    for (const c of (p.spec?.containers ?? []) as Array<{ name: string; resources?: { requests?: Record<string, string>; limits?: Record<string, string> } }>) {
      const k = workloadKey(ref, c.name);
      if (!index.has(k)) index.set(k, { requests: c.resources?.requests ?? {}, limits: c.resources?.limits ?? {} });
    }
  }
  return (w, container) => {
    const c = index.get(workloadKey(w, container));
    return c ? { requests: resourcesOf(c.requests), limits: resourcesOf(c.limits) } : undefined;
  };
}

/**
 * The telemetry routes, serving the feature telemetryFeature built for this controller; without
 * one (no prometheusUrl) they answer 503 saying how to turn telemetry on.
 */
export function registerTelemetryRoutes(router: Router, parts: ControllerParts, feature: TelemetryFeature | undefined): void {
  const featureOf = (): TelemetryFeature => enabled(feature);
  registerStatisticsRoutes(router, featureOf);
  registerModelRoutes(router, featureOf);
  registerResizeRoutes(router, parts, featureOf);
}

function enabled(feature: TelemetryFeature | undefined): TelemetryFeature {
  if (!feature) throw new NemuError(ErrorCodes.CONFIG, 'telemetry is off: start the controller with --prometheus-url <url>', { status: 503 });
  return feature;
}

/** The latest snapshot; before the first refresh has one, why there is none yet (503). */
function snapshotOf(feature: TelemetryFeature): Snapshot {
  const s = feature.telemetry.snapshot;
  if (!s)
    throw new NemuError(
      feature.telemetry.lastError?.code ?? ErrorCodes.INTERNAL,
      feature.telemetry.lastError ? `${feature.telemetry.lastError.message}` : 'no telemetry yet; the first refresh is running, try again in a moment',
      { status: 503 },
    );
  return s;
}

/** Seasons, statistics, recommendations and what-if, from the latest snapshot. */
function registerStatisticsRoutes(router: Router, featureOf: () => TelemetryFeature): void {
  router.get('/api/v1/seasons', { verb: 'get', resource: 'telemetry', scope: 'cluster' }, async (req) => {
    const telemetry = featureOf().telemetry;
    const [namespace, kind, name] = ['namespace', 'kind', 'name'].map((k) => req.query.get(k) ?? '');
    if (!name) return telemetry.seasons();
    if (!namespace)
      throw new NemuError(
        ErrorCodes.BAD_REQUEST,
        'a workload profile needs namespace, kind (default Deployment) and name: /api/v1/seasons?namespace=shop&kind=Deployment&name=web',
        { status: 400 },
      );
    return telemetry.workloadProfile({ namespace, kind: kind || 'Deployment', name });
  });
  router.get('/api/v1/telemetry', { verb: 'get', resource: 'telemetry', scope: 'cluster' }, (req) => {
    const feature = featureOf();
    const s = snapshotOf(feature);
    return {
      at: new Date(s.at * 1000).toISOString(),
      window: s.window,
      queries: s.queries,
      durationMs: s.durationMs,
      lastRefresh: feature.telemetry.lastRefresh,
      workloads: s.workloads,
      ...(req.query.get('containers') === 'true' ? { containers: s.containers } : {}),
    };
  });
  router.post('/api/v1/telemetry/refresh', { verb: 'create', resource: 'telemetry', subresource: 'refresh', scope: 'cluster' }, async () => {
    const feature = featureOf();
    await feature.telemetry.refresh();
    if (feature.telemetry.lastError) throw feature.telemetry.lastError;
    return feature.telemetry.lastRefresh;
  });
  router.get('/api/v1/recommendations', { verb: 'get', resource: 'telemetry', scope: 'cluster' }, () => {
    const feature = featureOf();
    const s = snapshotOf(feature);
    const { brainsets, engine } = feature.telemetry.settings;
    return {
      season: feature.telemetry.currentSeason(),
      items: s.workloads.map((w) => ({
        workload: w.workload,
        container: w.container,
        pods: w.pods,
        peak: recommend(w, brainsets.peak, engine),
        offPeak: recommend(w, brainsets['off-peak'], engine),
      })),
    };
  });
  router.get('/api/v1/whatif', { verb: 'get', resource: 'telemetry', scope: 'cluster' }, async () => {
    const feature = featureOf();
    const s = snapshotOf(feature);
    const owners: OwnerLookup = s.owners ?? (() => undefined);
    const current = feature.model ? currentFromModel(feature.model) : await currentFromPrometheus(feature.telemetry.prom, s.at, owners);
    return computeWhatIf(s, feature.telemetry.settings, current);
  });
}

function registerModelRoutes(router: Router, featureOf: () => TelemetryFeature): void {
  const model = () => {
    const feature = featureOf();
    if (!feature.model)
      throw new NemuError(ErrorCodes.CONFIG, 'the cluster model needs a cluster: start the controller with --kubeconfig <file> or in a pod', { status: 503 });
    return feature.model.view(feature.telemetry.snapshot);
  };
  router.get('/api/v1/model', { verb: 'get', resource: 'telemetry', scope: 'cluster' }, () => model());
  router.get('/api/v1/model/export', { verb: 'get', resource: 'telemetry', scope: 'cluster' }, () => ({
    content: JSON.stringify(model(), null, 2),
    contentType: 'application/json',
    headers: { 'content-disposition': 'attachment; filename="nemutator-model.json"' },
  }));
}

/** Season-flip resizes: their history, a flip by hand, and rolling one back. */
function registerResizeRoutes(router: Router, parts: ControllerParts, featureOf: () => TelemetryFeature): void {
  router.get('/api/v1/resizes', { verb: 'list', resource: 'resizes', scope: 'cluster' }, () => ({
    mode: parts.config.resizeOnSeasonFlip,
    items: featureOf().ladder?.history ?? [],
  }));
  router.post('/api/v1/resizes/flip', { verb: 'create', resource: 'resizes', subresource: 'flip', scope: 'cluster' }, async (req) => {
    const feature = featureOf();
    const ladder = feature.ladder;
    if (!ladder) throw new NemuError(ErrorCodes.CONFIG, 'resizing needs a cluster (--kubeconfig) and the mutation log', { status: 503 });
    const season = (req.query.get('season') ?? feature.telemetry.currentSeason()) as Season;
    if (season !== 'peak' && season !== 'off-peak') throw new NemuError(ErrorCodes.BAD_REQUEST, 'season must be peak or off-peak', { status: 400 });
    const mode = req.query.get('dryRun') === 'true' ? 'dry-run' : parts.config.resizeOnSeasonFlip === 'off' ? 'dry-run' : parts.config.resizeOnSeasonFlip;
    return { season, mode, items: await ladder.onFlip(season, mode) };
  });
  router.post('/api/v1/resizes/{id}/rollback', { verb: 'create', resource: 'resizes', subresource: 'rollback', scope: 'cluster' }, async (req) => {
    const ladder = featureOf().ladder;
    if (!ladder) throw new NemuError(ErrorCodes.CONFIG, 'resizing needs a cluster (--kubeconfig)', { status: 503 });
    return ladder.rollback(req.params.id!, req.user?.username);
  });
}
