/** The profiler feature of the controller: store, authorization, capture service, routes, continuous mode. */
import { CoreV1Api } from '@kubernetes/client-node';

import { loadKubeConfig } from '#common/kube.js';

import type { ControllerParts } from '../app.ts';
import type { Router } from '../server/router.ts';
import { ContinuousProfiler } from './continuous.ts';
import { registerProfileRoutes } from './routes.ts';
import { ProfileService } from './service.ts';
import { ProfileStore } from './store.ts';

export function registerProfiles(router: Router, parts: ControllerParts): { service: ProfileService; store: ProfileStore; continuous?: ContinuousProfiler } {
  const { config } = parts;
  const kube = loadKubeConfig(config.kubeconfig);
  const store = new ProfileStore(parts.store, config.profileRetention, config.profileMaxAge);
  const log = parts.log.child({ component: 'profiles' });
  const service = new ProfileService({ hub: parts.hub, registry: parts.registry, store, log, ...(kube ? { kube } : {}) });
  registerProfileRoutes(router, { service, store });
  if (!config.profileContinuous) return { service, store };

  const core = kube?.makeApiClient(CoreV1Api);
  const continuous = new ContinuousProfiler({
    service,
    store,
    registry: parts.registry,
    log,
    intervalMs: config.profileContinuousInterval,
    seconds: config.profileContinuousSeconds,
    hz: config.profileContinuousHz,
    minAgeMs: config.profileContinuousMinAge,
    isLeader: parts.isLeader,
    ...(core
      ? {
          podStartedAt: async (namespace: string, name: string) => {
            const pod = await core.readNamespacedPod({ namespace, name }).catch(() => undefined);
            const t = pod?.status?.startTime;
            return t ? new Date(t).getTime() : undefined;
          },
        }
      : {}),
  });
  continuous.start();
  parts.onStop(() => continuous.stop());
  return { service, store, continuous };
}
