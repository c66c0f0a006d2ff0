/**
 * Namespace labels, kept by an informer (list + watch namespaces: the only rights it needs),
 * for admission: which Pod Security level a pod's namespace enforces. Admission never waits
 * on the API server — until the first list arrives, or while the watch is broken, a
 * namespace reads as unknown and the webhook says nothing about Pod Security.
 */
import { CoreV1Api, type Informer, type KubeConfig, makeInformer, type ObjectCache, type V1Namespace } from '@kubernetes/client-node';

import type { Logger } from '#common/log.js';

export interface NamespaceLabels {
  labels(namespace: string): Readonly<Record<string, string>> | undefined;
  stop(): Promise<void>;
}

export function watchNamespaceLabels(kc: KubeConfig, log: Logger): NamespaceLabels {
  const core = kc.makeApiClient(CoreV1Api);
  const informer: ObjectCache<V1Namespace> & Informer<V1Namespace> = makeInformer<V1Namespace>(kc, '/api/v1/namespaces', () => core.listNamespace() as never);
  let stopped = false;
  informer.on('error', (err) => {
    if (stopped) return;
    log.warn({ err: (err as Error)?.message ?? err }, 'namespace watch failed (Pod Security warnings paused); restarting it in 5 s');
    setTimeout(() => {
      if (!stopped) void informer.start().catch(() => undefined);
    }, 5000).unref();
  });
  void informer
    .start()
    .catch((err: unknown) => log.warn({ err: (err as Error).message }, 'namespaces cannot be listed; the webhook gives no Pod Security warnings'));
  return {
    labels: (namespace) => informer.get(namespace)?.metadata?.labels,
    async stop() {
      stopped = true;
      await informer.stop().catch(() => undefined);
    },
  };
}
