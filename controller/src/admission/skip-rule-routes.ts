/**
 * REST: GET /api/v1/skip-rules?namespace=, DELETE /api/v1/skip-rules/{namespace}/{kind}/{name}.
 * A rollback writes a skip rule so the rolled-back workload is not mutated again; removing the
 * rule (once the dictionary entry or the mutator is fixed) lets mutation resume for the pods
 * created after it.
 */
import { ErrorCodes, NemuError } from '#common/errors.js';

import type { Router } from '../server/router.ts';
import type { SkipRules } from './skip-rules.ts';

export function registerSkipRuleRoutes(router: Router, skipRules: SkipRules): void {
  router.get('/api/v1/skip-rules', { verb: 'list', resource: 'skiprules', scope: 'query' }, async (req) => {
    const namespace = req.query.get('namespace') || undefined;
    return { items: await skipRules.list(namespace) };
  });
  router.delete('/api/v1/skip-rules/{namespace}/{kind}/{name}', { verb: 'delete', resource: 'skiprules', scope: 'param:namespace' }, async (req) => {
    const { namespace, kind, name } = req.params as { namespace: string; kind: string; name: string };
    if (!(await skipRules.remove(namespace, kind, name))) {
      throw new NemuError(ErrorCodes.NOT_FOUND, `there is no skip rule for ${kind} ${namespace}/${name}; 'nemutator skip-rules list' shows the rules`, {
        status: 404,
      });
    }
    return { status: 204 };
  });
}
