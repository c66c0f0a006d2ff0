/**
 * The controller's features, plugged into the app: the admission handler (mutator chain)
 * and the REST routes each feature adds. Both entry points (cluster and local) use this.
 */
import { ErrorCodes, NemuError } from '#common/errors.js';
import { loadKubeConfig } from '#common/kube.js';

import type { AdmissionHandler } from './admission/handler.ts';
import { createAdmissionHandler } from './admission/handler.ts';
import { enforcedLevel } from './admission/pod-security.ts';
import { registerSkipRuleRoutes } from './admission/skip-rule-routes.ts';
import { SkipRules } from './admission/skip-rules.ts';
import type { ControllerDeps, ControllerParts } from './app.ts';
import type { Dictionary } from './dictionary/dictionary.ts';
import { openDictionary } from './dictionary/open.ts';
import { registerDictionaryRoutes } from './dictionary/routes.ts';
import { type NamespaceLabels, watchNamespaceLabels } from './kube/namespaces.ts';
import { ClusterModel } from './model/model.ts';
import { clusterFromConfig } from './mutations/cluster.ts';
import { MutationLog } from './mutations/log.ts';
import { registerMutationRoutes } from './mutations/routes.ts';
import { DEFAULT_CHAIN } from './mutators/chain.ts';
import { parseRatioPolicy, RatioSource } from './mutators/resources.ts';
import { withSchedulerOptIn } from './mutators/scheduler.ts';
import { withSecretsOptions } from './mutators/secrets.ts';
import { registerProfiles } from './profiles/index.ts';
import { attachSchedulerSources } from './scheduler/extender-setup.ts';
import type { NeighbourLookup } from './scheduler/neighbours.ts';
import { type NeighbourFeature, neighboursFeature, registerNeighbourRoutes } from './scheduler/neighbours-feature.ts';
import { registerSecretRoutes } from './secrets/routes.ts';
import type { Router } from './server/router.ts';
import { registerTelemetryRoutes, type TelemetryFeature, telemetryFeature } from './telemetry/feature.ts';

/** What admission and the routes share, per running controller. */
interface AdmissionParts {
  dictionary: Dictionary;
  mutationLog: MutationLog;
  skipRules: SkipRules;
}

/** Admission, and the telemetry it was built with (the telemetry routes serve the same one). */
interface Admission {
  handler: AdmissionHandler;
  /** Undefined without prometheusUrl. */
  telemetry: TelemetryFeature | undefined;
  /** Bad-neighbour scores (the scheduler extender's NeighbourLookup) and their labels. */
  neighbours: NeighbourFeature;
  /** The cluster model neighbours and the extender share. */
  cluster: SharedModel;
}

interface SharedModel {
  model?: ClusterModel;
  ready?: Promise<void>;
}

/** The controller's features, built once per running controller from its parts. */
export interface Features {
  admission: AdmissionHandler;
  /** Bad-neighbour scores: the NeighbourLookup the scheduler extender reads. */
  neighbours: NeighbourLookup;
  /** Adds the REST routes; they serve the same dictionary, mutation log, skip rules and telemetry admission uses. */
  registerRoutes(router: Router): void;
}

async function admissionParts(parts: ControllerParts): Promise<AdmissionParts> {
  const dictionary = await openDictionary(parts.config, parts.store, parts.log, parts.metrics);
  const mutationLog = new MutationLog(parts.store, parts.log.child({ component: 'mutation-log' }), {
    health: parts.storeHealth,
    timeoutMs: parts.config.mutationLogTimeout,
    onWriteFailure: () => parts.metrics.mutationLogWriteFailures.inc(),
  });
  const skipRules = new SkipRules(parts.store);
  // On shutdown the queued log entries are written and Redis is let go, before the store closes.
  parts.onStop(async () => {
    await mutationLog.flush();
    mutationLog.close();
    await dictionary.close();
    skipRules.close();
  });
  return { dictionary, mutationLog, skipRules };
}

async function createAdmission(parts: ControllerParts, shared: AdmissionParts): Promise<Admission> {
  const { dictionary, mutationLog, skipRules } = shared;
  let ratio: RatioSource | undefined;
  try {
    const policy = parseRatioPolicy(parts.config.resourceRatio);
    if (Object.keys(policy).length > 0) ratio = new RatioSource(policy);
  } catch (e) {
    throw new NemuError(ErrorCodes.CONFIG, (e as Error).message);
  }
  // the secrets mutator takes its init image, token audience and socket directory from configuration
  const chain = withSchedulerOptIn(withSecretsOptions(DEFAULT_CHAIN, parts.config), parts.config.optInSchedulerName);
  // telemetry recommendations (cached, refreshed in the background) come before the ratio policy
  const telemetry = await telemetryFeature(parts, mutationLog);
  const namespaces = watchNamespaces(parts);
  const handler = createAdmissionHandler({
    ...(namespaces
      ? {
          podSecurityLevel: (namespace: string) => enforcedLevel(namespaces.labels(namespace)),
          namespaceLabels: (namespace: string) => namespaces.labels(namespace),
        }
      : {}),
    log: parts.log.child({ component: 'admission' }),
    dictionary,
    mutationLog,
    skipRules,
    metrics: parts.metrics,
    chain,
    memoEntries: parts.config.admissionMemoEntries,
    deadlineMs: parts.config.dictionaryTimeout,
    ...(telemetry ? { telemetry: telemetry.source } : {}),
    ...(ratio ? { ratio } : {}),
  });
  const cluster = clusterModel(parts, telemetry);
  return { handler, telemetry, cluster, neighbours: createNeighbours(parts, shared, cluster.model) };
}

/**
 * One cluster model for everything that reads cluster objects (neighbour scores, the scheduler
 * extender): telemetry's, else one of its own when there is a cluster. `ready` once it has listed.
 */
function clusterModel(parts: ControllerParts, telemetry: TelemetryFeature | undefined): SharedModel {
  if (telemetry?.model) return { model: telemetry.model, ready: telemetry.model.start() };
  const kc = loadKubeConfig(parts.config.kubeconfig);
  if (!kc) return {};
  const own = new ClusterModel(kc, parts.log.child({ component: 'model' }));
  const ready = own
    .start()
    .catch((e: Error) => parts.log.warn({ err: e.message }, 'cluster model unavailable: neighbour scores and the scheduler extender see no cluster objects'));
  parts.onStop(() => own.stop());
  return { model: own, ready };
}

/** With a cluster: namespace labels from an informer (Pod Security level, scheduler opt-in). */
function watchNamespaces(parts: ControllerParts): NamespaceLabels | undefined {
  const kc = loadKubeConfig(parts.config.kubeconfig);
  if (!kc) return undefined;
  const namespaces = watchNamespaceLabels(kc, parts.log.child({ component: 'namespaces' }));
  parts.onStop(() => namespaces.stop());
  return namespaces;
}

/** Bad-neighbour scores from the fleet's reports; pods' requests and owners from the shared cluster model. */
function createNeighbours(parts: ControllerParts, shared: AdmissionParts, model: ClusterModel | undefined): NeighbourFeature {
  const cluster = clusterFromConfig(parts.config.kubeconfig);
  const feature = neighboursFeature({
    config: parts.config,
    registry: parts.registry,
    log: parts.log.child({ component: 'neighbours' }),
    isLeader: parts.isLeader,
    mutationLog: shared.mutationLog,
    skipRules: shared.skipRules,
    ...(model ? { model } : {}),
    ...(cluster ? { cluster } : {}),
  });
  parts.onStop(() => feature.stop());
  return feature;
}

function registerRoutes(router: Router, parts: ControllerParts, shared: AdmissionParts, admission: Admission): void {
  const { telemetry } = admission;
  registerDictionaryRoutes(router, shared.dictionary);
  registerSkipRuleRoutes(router, shared.skipRules);
  registerMutationRoutes(router, {
    log: shared.mutationLog,
    skipRules: shared.skipRules,
    config: parts.config,
    logger: parts.log.child({ component: 'rollback' }),
  });
  registerTelemetryRoutes(router, parts, telemetry);
  registerProfiles(router, parts);
  registerSecretRoutes(router, { fleet: parts.hub, config: parts.config, log: parts.log.child({ component: 'secrets' }) });
  registerNeighbourRoutes(router, admission.neighbours);
}

/** Builds admission and the routes from one set of shared parts: the routes cannot exist without them. */
export async function createFeatures(parts: ControllerParts): Promise<Features> {
  const shared = await admissionParts(parts);
  const admission = await createAdmission(parts, shared);
  // The scheduler extender scores with telemetry's profiles, the shared cluster model and the neighbour scores.
  attachSchedulerSources(parts, admission.telemetry?.telemetry, admission.cluster);
  parts.scheduler.useNeighbours(admission.neighbours.scorer);
  return {
    admission: admission.handler,
    neighbours: admission.neighbours.scorer,
    registerRoutes: (router) => registerRoutes(router, parts, shared, admission),
  };
}

/**
 * The features as startController's `admission` and `routes` hooks. startController builds
 * admission before it adds routes (ControllerDeps says so); `routes` serves the Features
 * that `admission` built for the same parts.
 */
export function controllerFeatures(): Required<Pick<ControllerDeps, 'admission' | 'routes'>> {
  const built = new WeakMap<ControllerParts, Features>();
  return {
    async admission(parts) {
      const features = await createFeatures(parts);
      built.set(parts, features);
      return features.admission;
    },
    routes(router, parts) {
      const features = built.get(parts);
      if (!features) throw new NemuError(ErrorCodes.INTERNAL, 'the routes hook ran before the admission hook built the features for this controller');
      features.registerRoutes(router);
    },
  };
}
