// A kubeconfig that kubectl and @kubernetes/client-node accept unmodified.
import { stringify } from 'yaml';

export interface KubeconfigInput {
  server: string;
  caPem: string;
  token: string;
  namespace?: string;
  name?: string;
  user?: string;
}

export function renderKubeconfig({ server, caPem, token, namespace = 'default', name = 'nemutator-double', user = 'admin' }: KubeconfigInput): string {
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name, cluster: { server, 'certificate-authority-data': Buffer.from(caPem).toString('base64') } }],
    users: [{ name: user, user: { token } }],
    contexts: [{ name, context: { cluster: name, user, namespace } }],
    'current-context': name,
    preferences: {},
  });
}
