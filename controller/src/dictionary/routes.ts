/** REST: GET /api/v1/dictionary, GET|PUT|DELETE /api/v1/dictionary/{key}. */
import { ErrorCodes, NemuError } from '#common/errors.js';

import type { Router } from '../server/router.ts';
import { checkEntry, type Dictionary } from './dictionary.ts';

export function registerDictionaryRoutes(router: Router, dictionary: Dictionary): void {
  router.get('/api/v1/dictionary', { verb: 'list', resource: 'dictionary', scope: 'cluster' }, async (req) => {
    const limit = Number(req.query.get('limit') ?? 1000);
    const items = await dictionary.list({ prefix: req.query.get('prefix') ?? '', limit: Number.isFinite(limit) && limit > 0 ? limit : 1000 });
    return { backend: dictionary.backend, items };
  });
  router.get('/api/v1/dictionary/{key}', { verb: 'get', resource: 'dictionary', scope: 'cluster' }, async (req) => {
    const key = req.params.key!;
    checkEntry(key);
    const value = await dictionary.get(key);
    if (value === undefined)
      throw new NemuError(ErrorCodes.NOT_FOUND, `dictionary key ${key} is not set; 'nemutator dict set ${key} VALUE' sets it`, { status: 404 });
    return { key, value };
  });
  router.put('/api/v1/dictionary/{key}', { verb: 'update', resource: 'dictionary', scope: 'cluster' }, async (req) => {
    const key = req.params.key!;
    const body = await req.json<{ value?: unknown }>();
    if (typeof body !== 'object' || body === null) throw new NemuError(ErrorCodes.BAD_REQUEST, 'send {"value": "..."}', { status: 400 });
    checkEntry(key, body.value);
    await dictionary.set(key, body.value as string);
    return { key, value: body.value };
  });
  router.delete('/api/v1/dictionary/{key}', { verb: 'delete', resource: 'dictionary', scope: 'cluster' }, async (req) => {
    const key = req.params.key!;
    checkEntry(key);
    if (!(await dictionary.del(key))) throw new NemuError(ErrorCodes.NOT_FOUND, `dictionary key ${key} is not set`, { status: 404 });
    return { status: 204 };
  });
}
