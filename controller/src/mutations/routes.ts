/** REST: GET /api/v1/mutations, GET /api/v1/mutations/{id}, POST /api/v1/mutations/{id}/rollback. */
import { ErrorCodes, NemuError } from '#common/errors.js';
import type { Logger } from '#common/log.js';

import type { SkipRules } from '../admission/skip-rules.ts';
import type { ControllerConfig } from '../config.ts';
import type { ApiRequest, Router } from '../server/router.ts';
import { type ClusterClient, clusterFromConfig } from './cluster.ts';
import type { MutationFilter, MutationLog } from './log.ts';
import { rollback } from './rollback.ts';

export interface MutationRoutesDeps {
  log: MutationLog;
  skipRules: SkipRules;
  config: Pick<ControllerConfig, 'kubeconfig'>;
  logger: Logger;
  /** Tests pass a cluster; by default it comes from the kubeconfig (or in-cluster). */
  cluster?: ClusterClient;
}

export function registerMutationRoutes(router: Router, deps: MutationRoutesDeps): void {
  let cluster: ClusterClient | undefined | null = deps.cluster ?? null;
  const getCluster = () => {
    if (cluster === null) cluster = clusterFromConfig(deps.config.kubeconfig);
    return cluster;
  };
  router.get('/api/v1/mutations', { verb: 'list', resource: 'mutations', scope: 'query' }, async (req) => {
    const filter: MutationFilter = {};
    for (const k of ['namespace', 'name', 'kind'] as const) {
      const v = req.query.get(k);
      if (v) filter[k] = v;
    }
    const limit = req.query.get('limit');
    if (limit) {
      const n = Number(limit);
      if (!Number.isInteger(n) || n < 1)
        throw new NemuError(ErrorCodes.BAD_REQUEST, `limit must be a positive integer, got ${JSON.stringify(limit)}`, { status: 400 });
      filter.limit = n;
    }
    return { items: await deps.log.list(filter) };
  });
  // The object's namespace, checked before the handler runs (an unknown id: cluster-wide).
  const mutation = { object: async (req: ApiRequest) => (await deps.log.get(req.params.id!))?.namespace ?? null };
  router.get('/api/v1/mutations/{id}', { verb: 'get', resource: 'mutations', scope: mutation }, async (req) => {
    const e = await deps.log.get(req.params.id!);
    if (!e)
      throw new NemuError(ErrorCodes.NOT_FOUND, `mutation ${req.params.id} is not in the mutation log; 'nemutator mutations list' shows the known ones`, {
        status: 404,
      });
    return e;
  });
  router.post('/api/v1/mutations/{id}/rollback', { verb: 'create', resource: 'mutations', subresource: 'rollback', scope: mutation }, async (req) => {
    const result = await rollback(req.params.id!, req.user?.username, { cluster: getCluster(), log: deps.log, skipRules: deps.skipRules });
    deps.logger.info(
      { id: result.id, kind: result.kind, namespace: result.namespace, name: result.name, action: result.action, user: req.user?.username },
      'mutation rolled back',
    );
    return result;
  });
}
