/** REST: GET /api/v1/audit[?user=&namespace=&limit=] — who did what through the API, newest first. */
import { ErrorCodes, NemuError } from '#common/errors.js';

import type { Router } from '../server/router.ts';
import type { AuditFilter, AuditLog } from './log.ts';

export function registerAuditRoutes(router: Router, audit: AuditLog): void {
  router.get('/api/v1/audit', { verb: 'list', resource: 'audit', scope: 'cluster' }, async (req) => {
    const filter: AuditFilter = {};
    const user = req.query.get('user');
    const namespace = req.query.get('namespace');
    if (user) filter.user = user;
    if (namespace) filter.namespace = namespace;
    const limit = req.query.get('limit');
    if (limit) {
      const n = Number(limit);
      if (!Number.isInteger(n) || n < 1)
        throw new NemuError(ErrorCodes.BAD_REQUEST, `limit must be a positive integer, got ${JSON.stringify(limit)}`, { status: 400 });
      filter.limit = n;
    }
    return { items: await audit.list(filter) };
  });
}
