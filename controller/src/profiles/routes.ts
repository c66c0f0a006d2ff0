/**
 * REST API of profiles:
 *   POST /api/v1/profiles {namespace, pod, container?, seconds?, hz?}  (local mode: {pid})
 *   GET  /api/v1/profiles[?namespace=&pod=]                             newest first, no stacks
 *   GET  /api/v1/profiles/{id}?format=pprof|speedscope|folded|svg[&base=<id>]
 * Without format, GET of one profile answers its summary as JSON. Capturing needs verb create
 * on profiles.nemutator.io in the pod's namespace, reading get or list there: profiles show a
 * pod's code paths (ClusterRole nemutator-profiler, not part of the viewer).
 */
import { ErrorCodes, NemuError } from '#common/errors.js';

import type { ApiRequest, Router } from '../server/router.ts';
import type { StoredProfile } from './model.ts';
import { FORMATS, isFormat, renderProfile } from './render/index.ts';
import { parseProfileRequest, type ProfileService } from './service.ts';
import { type ProfileStore, summarize } from './store.ts';

export interface ProfileRoutesOptions {
  service: ProfileService;
  store: ProfileStore;
}

/** Where a profile belongs: its pod's namespace, or none for a local-mode pid. */
function namespaceOf(target: { pid?: number; namespace?: string }): string | undefined {
  return target.pid ? undefined : target.namespace || undefined;
}

function links(id: string): Record<string, string> {
  return Object.fromEntries(FORMATS.map((f) => [f, `/api/v1/profiles/${id}?format=${f}`]));
}

function titleOf(p: StoredProfile): string {
  const what = p.target.pid
    ? `pid ${p.target.pid} on ${p.target.node}`
    : `${p.target.namespace}/${p.target.pod}${p.target.container ? ` (${p.target.container})` : ''}`;
  return `CPU flamegraph of ${what}, ${p.createdAt}`;
}

export function registerProfileRoutes(router: Router, opts: ProfileRoutesOptions): void {
  const { service, store } = opts;
  const notFound = (id: string) => new NemuError(ErrorCodes.NOT_FOUND, `no profile ${id} (it may have been pruned by the retention limit)`, { status: 404 });

  // A pod's profile is its namespace's business; a bare pid (local mode) is the node's, cluster-wide.
  const podOfBody = { request: async (req: ApiRequest) => namespaceOf(parseProfileRequest(await req.json())) };
  const storedProfile = {
    object: async (req: ApiRequest) => {
      const p = await store.get(req.params.id!);
      return p ? namespaceOf(p.target) : null;
    },
  };

  router.post('/api/v1/profiles', { verb: 'create', resource: 'profiles', scope: podOfBody }, async (req) => {
    const spec = parseProfileRequest(await req.json());
    req.audit(spec.pid ? { pid: String(spec.pid) } : { pod: spec.pod ?? '', ...(spec.container ? { container: spec.container } : {}) });
    const p = await service.capture(spec, req.user);
    return { status: 201, body: { ...summarize(p), links: links(p.id) } };
  });

  router.get('/api/v1/profiles', { verb: 'list', resource: 'profiles', scope: 'query' }, async (req) => {
    const namespace = req.query.get('namespace') || undefined;
    const pod = req.query.get('pod') ?? undefined;
    const limit = Number(req.query.get('limit') ?? 100);
    const items = await store.list({ ...(namespace ? { namespace } : {}), ...(pod ? { pod } : {}), limit: Number.isFinite(limit) ? limit : 100 });
    return { items: items.map((p) => ({ ...summarize(p), links: links(p.id) })) };
  });

  router.get('/api/v1/profiles/{id}', { verb: 'get', resource: 'profiles', scope: storedProfile }, async (req) => {
    const p = await store.get(req.params.id!);
    if (!p) throw notFound(req.params.id!);
    const format = req.query.get('format');
    const baseId = req.query.get('base');
    if (format === null || format === '' || format === 'json') return { ...summarize(p), links: links(p.id) };
    if (!isFormat(format)) throw new NemuError(ErrorCodes.BAD_REQUEST, `unknown format ${format}; use one of ${FORMATS.join(', ')}`, { status: 400 });
    let base: StoredProfile | undefined;
    if (baseId) {
      if (format !== 'svg') throw new NemuError(ErrorCodes.BAD_REQUEST, 'base (a differential flamegraph) needs format=svg', { status: 400 });
      base = await store.get(baseId);
      await req.authorize(base ? namespaceOf(base.target) : null, `profile ${baseId}`);
      if (!base) throw notFound(baseId);
    }
    const title = base ? `Differential flamegraph: ${p.id} against ${base.id}` : titleOf(p);
    const { content, contentType } = renderProfile(p.data, format, { title, ...(base ? { base: base.data } : {}) });
    const ext = { pprof: 'pb.gz', speedscope: 'json', folded: 'folded', svg: 'svg' }[format];
    return { content, contentType, headers: { 'content-disposition': `attachment; filename="profile-${p.id}.${ext}"` } };
  });
}
