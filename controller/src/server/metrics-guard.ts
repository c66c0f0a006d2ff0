/**
 * Who may read the controller's /metrics (on the webhook port): a bearer token the REST API
 * would accept (TokenReview in a cluster, the admin token in local mode) whose user may `get
 * metrics.nemutator.io` cluster-wide — the project's RBAC scheme, granted to scrapers by the
 * ClusterRole nemutator-metrics-scraper (manifests/rbac/user-roles.yaml). The webhook port
 * has no client certificates, so refused tokens are bounded per address before any
 * TokenReview is spent on them, as on the REST API.
 */
import { ErrorCodes, NemuError } from '#common/errors.js';

import type { Authorizer, Permission } from './access.ts';
import { RateLimiter } from './rate-limit.ts';
import type { Authenticator } from './router.ts';

export const METRICS_PERMISSION: Permission = { verb: 'get', resource: 'metrics' };

/** Resolves when the caller may read /metrics; throws 401, 403 or 429 (with the error's code) otherwise. */
export type MetricsGuard = (authorization: string | undefined, address: string) => Promise<void>;

export function metricsGuard(auth: Authenticator, authorizer: Authorizer): MetricsGuard {
  const refused = new RateLimiter({ rate: 1, burst: 20 });
  return async (authorization, address) => {
    const wait = refused.peek(address);
    if (wait > 0) throw new NemuError(ErrorCodes.RATE_LIMITED, `too many refused tokens from this address; retry in ${wait} s`, { status: 429 });
    const user = await auth.authenticate(authorization);
    if (!user) {
      refused.take(address);
      throw new NemuError(
        ErrorCodes.UNAUTHORIZED,
        '/metrics needs a bearer token: a service account allowed to get metrics.nemutator.io (ClusterRole nemutator-metrics-scraper), or the admin token in local mode',
        { status: 401 },
      );
    }
    const decision = await authorizer.decide(user, METRICS_PERMISSION, undefined);
    if (!decision.allowed) {
      throw new NemuError(
        ErrorCodes.FORBIDDEN,
        `${user.username} may not get metrics.nemutator.io cluster-wide${decision.reason ? ` (${decision.reason})` : ''}; bind ClusterRole nemutator-metrics-scraper`,
        { status: 403 },
      );
    }
  };
}
