/**
 * The controller in a cluster (the Deployment's entry point). Configuration from
 * NEMUTATOR_* variables and flags; callers and agents authenticated by TokenReview.
 */
import { hostname } from 'node:os';
import type { KubeConfig } from '@kubernetes/client-node';

import { help, loadConfig } from '#common/config.js';
import { ErrorCodes, isNemuError, NemuError } from '#common/errors.js';
import { loadKubeConfig } from '#common/kube.js';
import { createLogger, type Logger } from '#common/log.js';

import { servingIdentity, startController } from './app.ts';
import { ClusterTlsSource } from './certs/sources.ts';
import { type ControllerConfig, controllerSchema } from './config.ts';
import { controllerFeatures } from './features.ts';
import { TokenReviewAgentAuthenticator } from './fleet/auth.ts';
import { LeaderElector } from './kube/leader.ts';
import { TokenReviewer } from './kube/tokenreview.ts';
import { SchedulerClientSecret } from './scheduler/extender-client-secret.ts';
import { SubjectAccessReviewAuthorizer } from './server/access.ts';
import { TokenReviewAuthenticator } from './server/auth.ts';

/** Without a mounted certificate the replicas share a self-managed CA through a Secret. */
function clusterTlsSource(config: ControllerConfig, kc: KubeConfig, leader: LeaderElector, log: Logger): ClusterTlsSource | undefined {
  if (config.tlsCertFile || config.tlsKeyFile) return undefined;
  return new ClusterTlsSource(kc, {
    namespace: config.namespace,
    secretName: config.tlsSecretName,
    webhookConfigName: config.webhookConfigName,
    caConfigMapName: config.caConfigMapName,
    identity: servingIdentity(config),
    isLeader: () => leader.isLeader,
    log: log.child({ component: 'tls' }),
  });
}

/** The self-managed CA also signs kube-scheduler's client certificate for the extender (docs/scheduler.md). */
function schedulerClientSecret(config: ControllerConfig, kc: KubeConfig, leader: LeaderElector, running: { onStop(c: () => void): void }, log: Logger): void {
  if (!config.schedulerClientSecretName || config.schedulerClientCaFile) return;
  const clientSecret = new SchedulerClientSecret(kc, {
    namespace: config.namespace,
    caSecretName: config.tlsSecretName,
    secretName: config.schedulerClientSecretName,
    commonName: config.schedulerClientNames.split(',')[0]?.trim() || 'nemutator-scheduler',
    isLeader: () => leader.isLeader,
    log: log.child({ component: 'scheduler' }),
  });
  clientSecret.start();
  running.onStop(() => clientSecret.stop());
}

async function main(): Promise<void> {
  const { config, help: wantHelp } = loadConfig(controllerSchema, { program: 'nemutator-controller' });
  if (wantHelp) {
    console.log(help(controllerSchema, 'nemutator-controller'));
    return;
  }
  const log = createLogger({ level: config.logLevel, pretty: config.logFormat === 'pretty', name: 'nemutator-controller' });
  const kc = loadKubeConfig(config.kubeconfig);
  if (!kc) {
    throw new NemuError(
      ErrorCodes.CONFIG,
      'no cluster: not running in a pod and --kubeconfig is empty. For a controller on this machine without a cluster, use local mode: npm start',
    );
  }
  const identity = config.podName || hostname();
  const apiAudiences = config.apiTokenAudiences
    .split(',')
    .map((a) => a.trim())
    .filter(Boolean);
  const leader = new LeaderElector(kc, { namespace: config.namespace, name: config.leaseName, identity, log: log.child({ component: 'leader' }) });
  leader.start();
  const clusterTls = clusterTlsSource(config, kc, leader, log);
  // A new leader publishes caBundle at once rather than at the next poll.
  leader.on('started', () => void clusterTls?.reconcile().catch((e: Error) => log.warn({ err: e.message }, 'caBundle publication failed; will retry')));
  const running = await startController(config, {
    log,
    mode: 'cluster',
    isLeader: () => leader.isLeader,
    ...(clusterTls ? { tls: clusterTls } : {}),
    apiAuth: new TokenReviewAuthenticator(new TokenReviewer(kc, apiAudiences.length > 0 ? { audiences: apiAudiences } : {})),
    authorizer: new SubjectAccessReviewAuthorizer(kc, { allowTtlMs: config.authzCacheTtl }),
    agentAuth: new TokenReviewAgentAuthenticator(new TokenReviewer(kc, { audiences: ['nemutator'] }), {
      namespace: config.namespace,
      serviceAccount: config.agentServiceAccount,
    }),
    ...controllerFeatures(),
  });
  log.info({ webhook: running.webhookUrl, api: running.apiUrl, fleet: running.fleetUrl, scheduler: running.schedulerUrl }, 'controller started');
  if (clusterTls && running.schedulerUrl) schedulerClientSecret(config, kc, leader, running, log);
  // SIGTERM: the lease goes at once (another replica takes the singleton work), admission
  // keeps being served through the drain, then in-flight reviews finish and the log is flushed.
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    const force = setTimeout(() => process.exit(1), config.shutdownDrain + config.shutdownTimeout + 10_000);
    force.unref();
    void leader
      .stop()
      .catch((e: Error) => log.warn({ err: e.message }, 'releasing the lease failed'))
      .then(() => running.shutdown())
      .then(() => process.exit(0));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((e: unknown) => {
  console.error(isNemuError(e) ? `${e.code}: ${e.message}` : e);
  process.exit(isNemuError(e) && e.code === ErrorCodes.CONFIG ? 2 : 1);
});
