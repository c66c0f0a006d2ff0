/**
 * REST, local mode only: `POST /api/v1/secrets/values {path, data}` writes a new version of a
 * path in the embedded secret store (verb create on secretvalues.nemutator.io) and
 * `GET /api/v1/secrets/values` lists paths, versions and key names. No route ever answers a
 * value: the pods read them over the agent's socket. When local mode reads from Vault, both
 * say so (409) instead: the values are written with `vault kv put` there.
 */
import { ErrorCodes, NemuError } from '#common/errors.js';
import type { Logger } from '#common/log.js';

import type { Router } from '../server/router.ts';
import type { EmbeddedSecretStore } from './embedded.ts';
import { normalizeSecretPath } from './fanout.ts';

export interface SecretValueRoutesDeps {
  /** The embedded store; undefined when values come from Vault. */
  store: EmbeddedSecretStore | undefined;
  /** Where values come from when not embedded (named in the 409). */
  vaultAddr?: string;
  log: Logger;
}

export function registerSecretValueRoutes(router: Router, deps: SecretValueRoutesDeps): void {
  const store = (): EmbeddedSecretStore => {
    if (deps.store) return deps.store;
    throw new NemuError(
      ErrorCodes.SECRETS_IN_VAULT,
      `local mode reads secrets from Vault at ${deps.vaultAddr ?? 'VAULT_ADDR'}, not from its embedded store; write them there (vault kv put <mount>/<path> key=value)`,
      { status: 409 },
    );
  };

  router.post('/api/v1/secrets/values', { verb: 'create', resource: 'secretvalues', scope: 'cluster' }, async (req) => {
    const body = await req.json<{ path?: unknown; data?: unknown }>();
    const b = typeof body === 'object' && body !== null ? body : {};
    const path = normalizeSecretPath(b.path, { required: true });
    req.audit({ secretPath: path });
    const entry = await store().put(path, b.data as Record<string, unknown>);
    const keys = Object.keys(entry.data).sort();
    req.audit({ secretPath: path, version: String(entry.version), keys: keys.join(',') });
    deps.log.info({ user: req.user?.username, path, version: entry.version, keys }, 'secret written to the embedded store');
    return { status: 201, body: { path, version: entry.version, keys, createdTime: entry.createdTime } };
  });

  router.get('/api/v1/secrets/values', { verb: 'list', resource: 'secretvalues', scope: 'cluster' }, async () => ({ items: await store().list() }));
}
