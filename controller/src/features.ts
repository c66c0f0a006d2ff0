/**
 * The controller's features, plugged into the app: the admission handler (mutator chain)
 * and the REST routes each feature adds. Both entry points (cluster and local) use this.
 */
import { ErrorCodes, NemuError } from '#common/errors.js';
import { loadKubeConfig } from '#common/kube.js';

import type { AdmissionHandler } from './admission/handler.ts';
import { createAdmissionHandler } from './admission/handler.ts';
import { enforcedLevel, type PodSecurityLevel } from './admission/pod-security.ts';
import { registerSkipRuleRoutes } from './admission/skip-rule-routes.ts';
import { SkipRules } from './admission/skip-rules.ts';
import type { ControllerDeps, ControllerParts } from './app.ts';
import type { Dictionary } from './dictionary/dictionary.ts';
import { openDictionary } from './dictionary/open.ts';
import { registerDictionaryRoutes } from './dictionary/routes.ts';
import { watchNamespaceLabels } from './kube/namespaces.ts';
import { MutationLog } from './mutations/log.ts';
import { registerMutationRoutes } from './mutations/routes.ts';
import { DEFAULT_CHAIN } from './mutators/chain.ts';
import { parseRatioPolicy, RatioSource } from './mutators/resources.ts';
import { withSecretsOptions } from './mutators/secrets.ts';
import { registerProfiles } from './profiles/index.ts';
import { attachSchedulerSources } from './scheduler/extender-setup.ts';
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
}

/** The controller's features, built once per running controller from its parts. */
export interface Features {
  admission: AdmissionHandler;
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
  const chain = withSecretsOptions(DEFAULT_CHAIN, parts.config);
  // telemetry recommendations (cached, refreshed in the background) come before the ratio policy
  const telemetry = await telemetryFeature(parts, mutationLog);
  const podSecurityLevel = namespacePodSecurity(parts);
  const handler = createAdmissionHandler({
    ...(podSecurityLevel ? { podSecurityLevel } : {}),
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
  return { handler, telemetry };
}

/** With a cluster: the Pod Security level each namespace enforces, from a namespace informer. */
function namespacePodSecurity(parts: ControllerParts): ((namespace: string) => PodSecurityLevel) | undefined {
  const kc = loadKubeConfig(parts.config.kubeconfig);
  if (!kc) return undefined;
  const namespaces = watchNamespaceLabels(kc, parts.log.child({ component: 'namespaces' }));
  parts.onStop(() => namespaces.stop());
  return (namespace) => enforcedLevel(namespaces.labels(namespace));
}

function registerRoutes(router: Router, parts: ControllerParts, shared: AdmissionParts, telemetry: TelemetryFeature | undefined): void {
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
}

/** Builds admission and the routes from one set of shared parts: the routes cannot exist without them. */
export async function createFeatures(parts: ControllerParts): Promise<Features> {
  const shared = await admissionParts(parts);
  const { handler, telemetry } = await createAdmission(parts, shared);
  attachSchedulerSources(parts, telemetry);
  return { admission: handler, registerRoutes: (router) => registerRoutes(router, parts, shared, telemetry) };
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
