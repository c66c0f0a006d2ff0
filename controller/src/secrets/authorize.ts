/**
 * Who may force a rotation. In a cluster the API server decides: a SubjectAccessReview for
 * verb `create` on `secretrotations.nemutator.io` (the ClusterRole `nemutator-secrets-rotator`
 * grants it, docs/deploy.md). Without a cluster (local mode) the only caller who can
 * authenticate is the admin, who may do everything.
 */
import { AuthorizationV1Api, type KubeConfig } from '@kubernetes/client-node';
import { ErrorCodes, NemuError } from '../../../common/src/errors.ts';
import type { Identity } from '../server/router.ts';

export const ROTATE_ATTRIBUTES = { verb: 'create', group: 'nemutator.io', resource: 'secretrotations' } as const;

export interface RotationAuthorizer {
  /** Resolves when `user` may rotate; throws NEMU_ERR_FORBIDDEN (403) with the reason otherwise. */
  authorizeRotate(user: Identity | undefined): Promise<void>;
}

/** Local mode: authentication already proved the caller is the admin. */
export const localAuthorizer: RotationAuthorizer = {
  async authorizeRotate(user) {
    if (!user) throw new NemuError(ErrorCodes.UNAUTHORIZED, 'no caller identity', { status: 401 });
  },
};

export class SubjectAccessReviewAuthorizer implements RotationAuthorizer {
  private readonly api: AuthorizationV1Api;
  constructor(kc: KubeConfig) {
    this.api = kc.makeApiClient(AuthorizationV1Api);
  }

  async authorizeRotate(user: Identity | undefined): Promise<void> {
    if (!user) throw new NemuError(ErrorCodes.UNAUTHORIZED, 'no caller identity', { status: 401 });
    let status;
    try {
      const res = await this.api.createSubjectAccessReview({
        body: {
          apiVersion: 'authorization.k8s.io/v1',
          kind: 'SubjectAccessReview',
          spec: { user: user.username, groups: user.groups, ...(user.uid ? { uid: user.uid } : {}), resourceAttributes: { ...ROTATE_ATTRIBUTES } },
        },
      });
      status = res.status;
    } catch (e) {
      throw new NemuError(ErrorCodes.INTERNAL, `the API server did not answer the SubjectAccessReview for ${user.username}: ${(e as Error).message}; the controller needs create on subjectaccessreviews (docs/deploy.md)`, { status: 503 });
    }
    if (!status?.allowed) {
      const why = status?.reason ? ` (${status.reason})` : '';
      throw new NemuError(
        ErrorCodes.FORBIDDEN,
        `${user.username} may not rotate secrets: it needs verb create on secretrotations.nemutator.io, e.g. a binding to the ClusterRole nemutator-secrets-rotator${why}`,
        { status: 403 },
      );
    }
  }
}
