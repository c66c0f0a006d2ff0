/**
 * Who is calling the secrets socket: the process the kernel named (identity.ts), the pod token
 * it presents, and the pod the API server knows by that UID must all agree.
 */
import type { V1Pod } from '@kubernetes/client-node';

import { secretsError } from './errors.ts';
import type { CallerProcess } from './identity.ts';
import type { PodDirectory } from './pods.ts';
import { AUDIENCE_ANNOTATION, parseSecretsAnnotation, type PodSecretsSpec } from './references.ts';
import type { PodClaims, PodTokenVerifier } from './token.ts';

export interface Caller {
  process: CallerProcess;
  claims: PodClaims;
  pod: V1Pod;
  namespace: string;
  podName: string;
  container: string;
  spec: PodSecretsSpec;
}

export interface CallerCheck {
  nodeName: string;
  pods: PodDirectory;
  verifier: PodTokenVerifier;
  defaultAudience: string;
  /** How long to wait for the pod watch to deliver a pod the cgroup names but the cache lacks. */
  podWaitMs?: number;
}

/** The caller, or a secrets error saying which of process, token, pod and container disagree. */
export async function authenticateCaller(check: CallerCheck, proc: CallerProcess, token: string | undefined, container: string | undefined): Promise<Caller> {
  if (!token) throw secretsError('UNAUTHENTICATED', 'send the pod token: Authorization: Bearer <contents of NEMUTATOR_TOKEN_FILE>');
  if (!container) throw secretsError('BAD_REQUEST', 'send the container name in X-Nemutator-Container (NEMUTATOR_CONTAINER)');
  const pod = await check.pods.byUid(proc.podUid, check.podWaitMs ?? 2000);
  if (!pod) throw secretsError('UNKNOWN_POD', `the API server lists no pod ${proc.podUid} on node ${check.nodeName}`);
  const audience = pod.metadata?.annotations?.[AUDIENCE_ANNOTATION] || check.defaultAudience;
  const claims = await check.verifier.verify(token, audience);
  checkNodeAndPod(check.nodeName, proc, pod, claims);
  checkContainer(proc, pod, claims, container);
  const spec = parseSecretsAnnotation(pod.metadata?.annotations);
  if (!spec) throw secretsError('NOT_DECLARED', `pod ${claims.namespace}/${claims.podName} declares no secrets (annotation nemutator.io/secrets)`);
  return { process: proc, claims, pod, namespace: claims.namespace, podName: claims.podName, container, spec };
}

function checkNodeAndPod(nodeName: string, proc: CallerProcess, pod: V1Pod, claims: PodClaims): void {
  if (claims.nodeName !== undefined && claims.nodeName !== nodeName) {
    throw secretsError('WRONG_NODE', `the token is bound to node ${claims.nodeName}, this is node ${nodeName}`);
  }
  if (pod.spec?.nodeName !== nodeName) throw secretsError('WRONG_NODE', `pod ${proc.podUid} is not bound to node ${nodeName}`);
  if (claims.podUid !== proc.podUid) {
    throw secretsError('TOKEN_MISMATCH', 'the token belongs to another pod than the calling process; a pod may only present its own token');
  }
  if (claims.namespace !== pod.metadata?.namespace || claims.podName !== pod.metadata?.name) {
    throw secretsError('TOKEN_MISMATCH', 'the token names another pod than the one the API server knows by this UID');
  }
}

function checkContainer(proc: CallerProcess, pod: V1Pod, claims: PodClaims, container: string): void {
  const names = [...(pod.spec?.containers ?? []), ...(pod.spec?.initContainers ?? [])].map((c) => c.name);
  if (!names.includes(container)) throw secretsError('CONTAINER_MISMATCH', `pod ${claims.namespace}/${claims.podName} has no container "${container}"`);
  const statuses = [...(pod.status?.containerStatuses ?? []), ...(pod.status?.initContainerStatuses ?? [])];
  const known = statuses.find((s) => s.containerID?.replace(/^[a-z-]+:\/\//, '') === proc.containerId);
  if (known && known.name !== container) {
    throw secretsError('CONTAINER_MISMATCH', `the calling process runs in container "${known.name}", not "${container}"`);
  }
}
