/**
 * The two questions the kubelet asks the API server about a caller, asked the same way:
 * who is behind this bearer token (TokenReview, authentication.k8s.io/v1) and may that user
 * do this (SubjectAccessReview, authorization.k8s.io/v1). Reviews are created, answered and
 * never stored. Errors never carry the token.
 */
import { ErrorCodes, NemuError } from '#common/errors.js';

import type { KubeApi } from './api.ts';

export interface ReviewedUser {
  username: string;
  uid?: string;
  groups: string[];
  extra: Record<string, string[]>;
}

export type TokenVerdict = { authenticated: true; user: ReviewedUser } | { authenticated: false; reason: string };

export interface ResourceAttributes {
  verb: string;
  group: string;
  resource: string;
  subresource?: string;
  name?: string;
  namespace?: string;
}

export interface AccessVerdict {
  allowed: boolean;
  reason?: string;
}

/** The calls a review makes; KubeApi is one, a test may hand in another. */
export type ReviewClient = Pick<KubeApi, 'create'>;

/** A failed review as a 503 that names the permission the agent needs, with the token scrubbed from whatever the API server said. */
function unavailable(what: string, token: string | undefined, e: unknown): NemuError {
  let message = (e as Error).message ?? String(e);
  if (token) message = message.split(token).join('<token>');
  return new NemuError(
    ErrorCodes.INTERNAL,
    `the API server did not answer the ${what}: ${message}; the agent needs create on ${what.toLowerCase()}s (manifests/agent/rbac.yaml)`,
    { status: 503 },
  );
}

/** Who the token belongs to, for the API server's own audiences (as the kubelet asks). Rejects with a 503 when the API server cannot say. */
export async function reviewToken(kube: ReviewClient, token: string): Promise<TokenVerdict> {
  let status:
    { authenticated?: boolean; user?: { username?: string; uid?: string; groups?: string[]; extra?: Record<string, string[]> }; error?: string } | undefined;
  try {
    ({ status } = await kube.create<{ status?: typeof status }>('/apis/authentication.k8s.io/v1/tokenreviews', {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenReview',
      spec: { token },
    }));
  } catch (e) {
    throw unavailable('TokenReview', token, e);
  }
  if (status?.authenticated && status.user?.username) {
    const u = status.user;
    return { authenticated: true, user: { username: u.username!, ...(u.uid ? { uid: u.uid } : {}), groups: u.groups ?? [], extra: u.extra ?? {} } };
  }
  return { authenticated: false, reason: status?.error || 'the API server did not authenticate the token' };
}

/** Whether `user` may act on `resource`. Rejects with a 503 when the API server cannot say. */
export async function reviewAccess(kube: ReviewClient, user: ReviewedUser, resource: ResourceAttributes): Promise<AccessVerdict> {
  let status: { allowed?: boolean; denied?: boolean; reason?: string; evaluationError?: string } | undefined;
  try {
    ({ status } = await kube.create<{ status?: typeof status }>('/apis/authorization.k8s.io/v1/subjectaccessreviews', {
      apiVersion: 'authorization.k8s.io/v1',
      kind: 'SubjectAccessReview',
      spec: {
        user: user.username,
        groups: user.groups,
        ...(user.uid ? { uid: user.uid } : {}),
        ...(Object.keys(user.extra).length ? { extra: user.extra } : {}),
        resourceAttributes: resource,
      },
    }));
  } catch (e) {
    throw unavailable('SubjectAccessReview', undefined, e);
  }
  const reason = status?.reason || status?.evaluationError;
  return { allowed: status?.allowed === true && status.denied !== true, ...(reason ? { reason } : {}) };
}
