/**
 * REST: `POST /api/v1/secrets/rotate {path}` forces a rotation on every node (authorized by a
 * SubjectAccessReview in a cluster); `GET /api/v1/secrets/status?path=` shows which pod and
 * container holds which version, and which version it acknowledged. Values never pass here.
 */
import type { Logger } from '../../../common/src/log.ts';
import type { ControllerConfig } from '../config.ts';
import { loadKubeConfig } from '../../../common/src/kube.ts';
import type { Router } from '../server/router.ts';
import { localAuthorizer, SubjectAccessReviewAuthorizer, type RotationAuthorizer } from './authorize.ts';
import { normalizeSecretPath, rotateEverywhere, statusEverywhere, type SecretsFleet } from './fanout.ts';

export interface SecretRoutesDeps {
  fleet: SecretsFleet;
  config: Pick<ControllerConfig, 'kubeconfig' | 'secretsCommandTimeout'>;
  log: Logger;
  /** Tests pass one; by default a SubjectAccessReview when there is a cluster, else local (admin only). */
  authorizer?: RotationAuthorizer;
}

export function registerSecretRoutes(router: Router, deps: SecretRoutesDeps): void {
  let authorizer = deps.authorizer;
  const getAuthorizer = (): RotationAuthorizer => {
    if (!authorizer) {
      const kc = loadKubeConfig(deps.config.kubeconfig);
      authorizer = kc ? new SubjectAccessReviewAuthorizer(kc) : localAuthorizer;
    }
    return authorizer;
  };

  router.post('/api/v1/secrets/rotate', async (req) => {
    const body = await req.json<{ path?: unknown }>();
    const path = normalizeSecretPath(typeof body === 'object' && body !== null ? body.path : undefined, { required: true });
    await getAuthorizer().authorizeRotate(req.user);
    const summary = await rotateEverywhere(deps.fleet, path, deps.config.secretsCommandTimeout);
    // audited: who, what, where — references and counts only
    deps.log.info({ user: req.user?.username, path, nodes: summary.totals.nodes, failed: summary.totals.failed, newVersions: summary.totals.newVersions, watchersNotified: summary.totals.watchersNotified }, 'secret rotation forced');
    for (const n of summary.nodes) if (!n.ok) deps.log.warn({ node: n.node, path, code: n.error?.code }, 'a node did not rotate');
    return summary;
  });

  router.get('/api/v1/secrets/status', async (req) => {
    const path = normalizeSecretPath(req.query.get('path') ?? '', { required: false });
    return statusEverywhere(deps.fleet, path, deps.config.secretsCommandTimeout);
  });
}
