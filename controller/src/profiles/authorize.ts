/**
 * Who may profile what. Profiling reads a pod's code paths and runs BPF on its node, so it is
 * its own permission: verb `create` (capture) or `get` (read a stored profile) on resource
 * `profiles` in API group `nemutator.io`, in the pod's namespace — checked with a
 * SubjectAccessReview, so ordinary RBAC (ClusterRole nemutator-profiler) grants it. Without a
 * cluster (local mode) only the admin token (group system:masters) may.
 */
import { AuthorizationV1Api, type KubeConfig } from '@kubernetes/client-node';
import { ErrorCodes, NemuError } from '../../../common/src/errors.ts';
import type { Identity } from '../server/router.ts';

export type ProfileVerb = 'create' | 'get' | 'list';

export interface ProfileAuthorizer {
  /** Throws NEMU_ERR_FORBIDDEN (403) unless user may `verb` profiles in namespace ('' = every namespace). */
  check(user: Identity | undefined, verb: ProfileVerb, namespace: string): Promise<void>;
}

function forbidden(user: Identity | undefined, verb: ProfileVerb, namespace: string, why: string): NemuError {
  return new NemuError(
    ErrorCodes.FORBIDDEN,
    `${user?.username ?? 'anonymous'} may not ${verb} profiles ${namespace ? `in namespace ${namespace}` : 'cluster-wide'}${why}; ` +
      `grant verb ${verb} on resource profiles in API group nemutator.io (e.g. bind ClusterRole nemutator-profiler)`,
    { status: 403 },
  );
}

export class LocalAuthorizer implements ProfileAuthorizer {
  async check(user: Identity | undefined, verb: ProfileVerb, namespace: string): Promise<void> {
    if (!user?.groups.includes('system:masters')) throw forbidden(user, verb, namespace, ' (local mode: only the admin token)');
  }
}

export class SubjectAccessReviewAuthorizer implements ProfileAuthorizer {
  private readonly api: AuthorizationV1Api;

  constructor(kc: KubeConfig) {
    this.api = kc.makeApiClient(AuthorizationV1Api);
  }

  async check(user: Identity | undefined, verb: ProfileVerb, namespace: string): Promise<void> {
    if (user === undefined) throw forbidden(user, verb, namespace, '');
    // As in the API server: system:masters is never asked (the local admin token is in it).
    if (user.groups.includes('system:masters')) return;
    let review;
    try {
      review = await this.api.createSubjectAccessReview({
        body: {
          apiVersion: 'authorization.k8s.io/v1',
          kind: 'SubjectAccessReview',
          spec: {
            user: user.username,
            groups: user.groups,
            ...(user.uid ? { uid: user.uid } : {}),
            resourceAttributes: { group: 'nemutator.io', resource: 'profiles', verb, ...(namespace ? { namespace } : {}) },
          },
        },
      });
    } catch (e) {
      throw new NemuError(ErrorCodes.INTERNAL, `cannot check permissions with a SubjectAccessReview: ${(e as Error).message}; the controller needs create on subjectaccessreviews`, { status: 503 });
    }
    if (!review.status?.allowed) throw forbidden(user, verb, namespace, review.status?.reason ? ` (${review.status.reason})` : '');
  }
}
