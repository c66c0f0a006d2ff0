/**
 * The controller's features, plugged into the app: the admission handler (mutator chain)
 * and the REST routes each feature adds. Both entry points (cluster and local) use this.
 */
import type { AdmissionHandler } from './admission/handler.ts';
import { createAdmissionHandler } from './admission/handler.ts';
import { SkipRules } from './admission/skip-rules.ts';
import { registerSkipRuleRoutes } from './admission/skip-rule-routes.ts';
import type { ControllerParts } from './app.ts';
import type { Dictionary } from './dictionary/dictionary.ts';
import { openDictionary } from './dictionary/open.ts';
import { registerDictionaryRoutes } from './dictionary/routes.ts';
import { RatioSource, parseRatioPolicy } from './mutators/resources.ts';
import { DEFAULT_CHAIN } from './mutators/chain.ts';
import { withSecretsOptions } from './mutators/secrets.ts';
import { registerSecretRoutes } from './secrets/routes.ts';
import { MutationLog } from './mutations/log.ts';
import { registerMutationRoutes } from './mutations/routes.ts';
import { registerProfiles } from './profiles/index.ts';
import type { Router } from './server/router.ts';
import { registerTelemetryRoutes, telemetryFeature } from './telemetry/feature.ts';
import { ErrorCodes, NemuError } from '../../common/src/errors.ts';

/** What admission and the routes share, per running controller. */
interface AdmissionParts {
  dictionary: Dictionary;
  mutationLog: MutationLog;
  skipRules: SkipRules;
}

const shared = new WeakMap<ControllerParts, AdmissionParts>();

async function admissionParts(parts: ControllerParts): Promise<AdmissionParts> {
  let p = shared.get(parts);
  if (p) return p;
  const dictionary = await openDictionary(parts.config, parts.store, parts.log, parts.metrics);
  const mutationLog = new MutationLog(parts.store, parts.log.child({ component: 'mutation-log' }), {
    health: parts.storeHealth,
    timeoutMs: parts.config.mutationLogTimeout,
    onWriteFailure: () => parts.metrics.mutationLogWriteFailures.inc(),
  });
  // On shutdown the queued log entries are written and Redis is let go, before the store closes.
  const skipRules = new SkipRules(parts.store);
  parts.onStop(async () => {
    await mutationLog.flush();
    mutationLog.close();
    await dictionary.close();
    skipRules.close();
  });
  p = { dictionary, mutationLog, skipRules };
  shared.set(parts, p);
  return p;
}

export async function createAdmission(parts: ControllerParts): Promise<AdmissionHandler> {
  const { dictionary, mutationLog, skipRules } = await admissionParts(parts);
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
  return createAdmissionHandler({ log: parts.log.child({ component: 'admission' }), dictionary, mutationLog, skipRules, metrics: parts.metrics, chain, memoEntries: parts.config.admissionMemoEntries, deadlineMs: parts.config.dictionaryTimeout, ...(telemetry ? { telemetry: telemetry.source } : {}), ...(ratio ? { ratio } : {}) });
}

export function registerRoutes(router: Router, parts: ControllerParts): void {
  const p = shared.get(parts);
  if (!p) throw new Error('registerRoutes needs createAdmission to have run first');
  registerDictionaryRoutes(router, p.dictionary);
  registerSkipRuleRoutes(router, p.skipRules);
  registerMutationRoutes(router, { log: p.mutationLog, skipRules: p.skipRules, config: parts.config, logger: parts.log.child({ component: 'rollback' }) });
  registerTelemetryRoutes(router, parts);
  registerProfiles(router, parts);
  registerSecretRoutes(router, { fleet: parts.hub, config: parts.config, log: parts.log.child({ component: 'secrets' }) });
}
