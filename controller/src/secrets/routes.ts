/**
 * REST: `POST /api/v1/secrets/rotate {path}` forces a rotation on every node (verb create on
 * secretrotations.nemutator.io); `GET /api/v1/secrets/status?path=` shows which pod and
 * container holds which version, and which version it acknowledged. Values never pass here.
 */
import type { Logger } from '#common/log.js';

import type { ControllerConfig } from '../config.ts';
import type { Router } from '../server/router.ts';
import { normalizeSecretPath, rotateEverywhere, type SecretsFleet, statusEverywhere } from './fanout.ts';

export interface SecretRoutesDeps {
  fleet: SecretsFleet;
  config: Pick<ControllerConfig, 'secretsCommandTimeout'>;
  log: Logger;
}

export function registerSecretRoutes(router: Router, deps: SecretRoutesDeps): void {
  router.post('/api/v1/secrets/rotate', { verb: 'create', resource: 'secretrotations', scope: 'cluster' }, async (req) => {
    const body = await req.json<{ path?: unknown }>();
    const path = normalizeSecretPath(typeof body === 'object' && body !== null ? body.path : undefined, { required: true });
    req.audit({ secretPath: path });
    const summary = await rotateEverywhere(deps.fleet, path, deps.config.secretsCommandTimeout);
    // audited: who, what, where — references and counts only
    deps.log.info(
      {
        user: req.user?.username,
        path,
        nodes: summary.totals.nodes,
        failed: summary.totals.failed,
        newVersions: summary.totals.newVersions,
        watchersNotified: summary.totals.watchersNotified,
      },
      'secret rotation forced',
    );
    for (const n of summary.nodes) if (!n.ok) deps.log.warn({ node: n.node, path, code: n.error?.code }, 'a node did not rotate');
    return summary;
  });

  router.get('/api/v1/secrets/status', { verb: 'list', resource: 'secretstatus', scope: 'query' }, async (req) => {
    const path = normalizeSecretPath(req.query.get('path') ?? '', { required: false });
    const summary = await statusEverywhere(deps.fleet, path, deps.config.secretsCommandTimeout);
    // ?namespace= was authorized in that namespace only: the answer holds that namespace's pods only.
    const namespace = req.query.get('namespace');
    if (!namespace) return summary;
    // Per-node counts too: other namespaces' holders must not show through them.
    const holders = summary.holders.filter((h) => h.namespace === namespace);
    return { ...summary, holders, nodes: summary.nodes.map((n) => (n.ok ? { ...n, holders: holders.filter((h) => h.node === n.node).length } : n)) };
  });
}
