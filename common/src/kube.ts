/** Kubernetes access: a kubeconfig file when given, else the in-cluster service account. */
import { KubeConfig } from '@kubernetes/client-node';

import { ErrorCodes, NemuError } from './errors.ts';

export function loadKubeConfig(kubeconfig: string): KubeConfig | undefined {
  const kc = new KubeConfig();
  try {
    if (kubeconfig) kc.loadFromFile(kubeconfig);
    else if (process.env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
    else return undefined;
  } catch (e) {
    throw new NemuError(ErrorCodes.CONFIG, `cannot load the kubeconfig ${kubeconfig || '(in-cluster)'}: ${(e as Error).message}; check --kubeconfig`);
  }
  if (!kc.getCurrentCluster()) throw new NemuError(ErrorCodes.CONFIG, `the kubeconfig ${kubeconfig} has no current cluster; set current-context`);
  return kc;
}
