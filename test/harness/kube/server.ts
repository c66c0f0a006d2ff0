// HTTP routing of the double: kube-apiserver's URL layout (/api/v1/…, /apis/<g>/<v>/…,
// namespaced and cluster paths, subresources, legacy /watch/ paths), discovery, OIDC
// documents, authentication, RBAC authorization, content negotiation (JSON, Table) and
// metav1.Status errors. Everything behind a route lives in the registry and its helpers.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parse as parseYaml } from 'yaml';

import { ADMIN_USER, ANONYMOUS_USER, type BoundObjectLookup, type TokenIssuer, TokenRejected, type UserInfo } from './auth.ts';
import { evictPod } from './disruption.ts';
import { openApiV2Protobuf, openApiV3GroupVersion, openApiV3Index } from './openapi.ts';
import { patchTypeOf } from './patch.ts';
import { decodeProtobufBody } from './protobuf.ts';
import { authorize, type RbacObjects } from './rbac.ts';
import type { DeleteOptions, Registry, RequestContext } from './registry.ts';
import { apiGroup, apiGroupList, apiResourceList, apiVersionOf, type ResourceTable, type ResourceType } from './resources.ts';
import { localSubjectAccessReview, selfSubjectAccessReview, selfSubjectReview, subjectAccessReview, tokenRequest, tokenReview } from './reviews.ts';
import { parseFieldSelector, parseLabelSelector } from './selectors.ts';
import { ApiError, badRequest, failure, forbidden, internalError, methodNotAllowed, pageNotFound, unauthorized, unsupportedMediaType } from './status.ts';
import { type IncludeObject, toTable, wantsTable } from './tables.ts';
import type { WatchHub } from './watch.ts';

export interface ServerDeps {
  table: ResourceTable;
  registry: Registry;
  watches: WatchHub;
  issuer: TokenIssuer;
  adminToken: string;
  rbac: RbacObjects;
  lookup: BoundObjectLookup;
  /** https://127.0.0.1:<port>, known once listening. */
  url(): string;
  version: Record<string, string>;
  /**
   * Observes every request when it starts (for tests); `user` is filled in once
   * authenticated and `status` when the response ends (0 while a watch is open).
   */
  onRequest?: (entry: { method: string; path: string; user: string; status: number }) => void;
}

const MAX_BODY = 3 * 1024 * 1024;

export function createRequestHandler(deps: ServerDeps): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    // Admission warnings travel with a refusal too: kube-apiserver's warning recorder writes
    // the Warning header as each one is added, and kubectl prints them before the error.
    const warnings: string[] = [];
    handle(deps, req, res, warnings).catch((err: unknown) => {
      const status = err instanceof ApiError ? err.status : internalError((err as Error)?.message ?? String(err)).status;
      if (!res.headersSent) sendJson(res, status.code, status, warnings);
      else res.destroy();
    });
  };
}

function sendJson(res: ServerResponse, code: number, body: unknown, warnings: string[] = []): void {
  const text = JSON.stringify(body);
  const headers: Record<string, string | string[]> = { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private' };
  if (warnings.length) headers['Warning'] = warnings.map((w) => `299 - ${JSON.stringify(w)}`);
  res.writeHead(code, headers);
  res.end(text);
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw failure(413, 'RequestEntityTooLarge', 'Request entity too large: limit is 3145728');
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

function decodeBody(buf: Buffer, contentType: string | undefined): unknown {
  if (buf.length === 0) return undefined;
  const ct = (contentType ?? 'application/json').split(';')[0]?.trim().toLowerCase();
  if (ct === 'application/vnd.kubernetes.protobuf') return decodeProtobufBody(buf);
  if (ct !== 'application/json' && ct !== 'application/yaml' && ct !== 'application/apply-patch+yaml') {
    throw unsupportedMediaType(
      `the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf`,
    );
  }
  const text = buf.toString('utf8');
  try {
    return ct === 'application/yaml' || ct === 'application/apply-patch+yaml' ? parseYaml(text) : JSON.parse(text);
  } catch (err) {
    throw badRequest(`couldn't get version/kind; json parse error: ${(err as Error).message}`);
  }
}

async function authenticate(deps: ServerDeps, req: IncomingMessage): Promise<UserInfo> {
  const user = await authenticateBearer(deps, req);
  return impersonate(deps, req, user);
}

/** Impersonate-User / -Group / -Uid / -Extra-*, authorized with the "impersonate" verb. */
function impersonate(deps: ServerDeps, req: IncomingMessage, requester: UserInfo): UserInfo {
  const h = req.headersDistinct;
  const username = h['impersonate-user']?.[0];
  const groups = (h['impersonate-group'] ?? []).flatMap((g) =>
    g
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean),
  );
  const uid = h['impersonate-uid']?.[0];
  const extra: Record<string, string[]> = {};
  for (const [k, v] of Object.entries(h)) if (k.startsWith('impersonate-extra-') && v) extra[decodeURIComponent(k.slice('impersonate-extra-'.length))] = v;
  if (!username) {
    if (groups.length || uid || Object.keys(extra).length) throw badRequest('requested impersonation of groups, uid or extra without impersonating a user');
    return requester;
  }
  const check = (resource: string, name: string, group = '', namespace?: string): void => {
    const d = authorize(requester, { resource: { verb: 'impersonate', group, resource, name, ...(namespace ? { namespace } : {}) } }, deps.rbac);
    if (!d.allowed) {
      throw forbidden(
        { group, plural: resource },
        name,
        `User "${requester.username}" cannot impersonate resource "${resource}" in API group "${group}" ${namespace ? `in the namespace "${namespace}"` : 'at the cluster scope'}`,
      );
    }
  };
  const sa = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(username);
  if (sa) check('serviceaccounts', sa[2] as string, '', sa[1]);
  else check('users', username);
  for (const g of groups) check('groups', g);
  if (uid) check('uids', uid, 'authentication.k8s.io');
  for (const k of Object.keys(extra)) for (const v of extra[k] ?? []) check(`userextras/${k}`, v, 'authentication.k8s.io');
  const finalGroups = [...groups];
  if (sa && groups.length === 0) finalGroups.push('system:serviceaccounts', `system:serviceaccounts:${sa[1]}`);
  if (username !== 'system:anonymous' && !finalGroups.includes('system:authenticated')) finalGroups.push('system:authenticated');
  return { username, groups: finalGroups, ...(uid ? { uid } : {}), ...(Object.keys(extra).length ? { extra } : {}) };
}

async function authenticateBearer(deps: ServerDeps, req: IncomingMessage): Promise<UserInfo> {
  const header = req.headers.authorization;
  if (!header) return ANONYMOUS_USER;
  const m = /^Bearer\s+(.+)$/i.exec(header);
  if (!m) throw unauthorized();
  const token = (m[1] as string).trim();
  if (token === deps.adminToken) return ADMIN_USER;
  try {
    return (await deps.issuer.authenticate(token, [], deps.lookup)).user;
  } catch (err) {
    if (err instanceof TokenRejected) throw unauthorized();
    throw err;
  }
}

function forbiddenMessage(user: UserInfo, verb: string, plural: string, sub: string | undefined, group: string, namespace: string | undefined): string {
  const resource = sub ? `${plural}/${sub}` : plural;
  const where = namespace ? `in the namespace "${namespace}"` : 'at the cluster scope';
  return `User "${user.username}" cannot ${verb} resource "${resource}" in API group "${group}" ${where}`;
}

async function handle(deps: ServerDeps, req: IncomingMessage, res: ServerResponse, warnings: string[]): Promise<void> {
  const url = new URL(req.url ?? '/', 'https://double.invalid');
  const method = (req.method ?? 'GET').toUpperCase();
  const path = url.pathname.replace(/\/+$/, '') || '/';
  let user: UserInfo = ANONYMOUS_USER;
  const entry = { method, path: url.pathname + url.search, user: '', status: 0 };
  deps.onRequest?.(entry);
  res.once('close', () => {
    entry.status = res.statusCode;
  });
  user = await authenticate(deps, req);
  entry.user = user.username;
  const segments = path.split('/').filter(Boolean).map(decodeURIComponent);

  // ---- non-resource endpoints ----
  if ((segments[0] !== 'api' && segments[0] !== 'apis') || isDiscoveryPath(segments, deps.table)) {
    const allowed = authorize(user, { nonResource: { path, verb: method.toLowerCase() } }, deps.rbac).allowed;
    if (!allowed) {
      // Anonymous requests are authenticated as system:anonymous and then refused, as with
      // kube-apiserver's default --anonymous-auth=true.
      throw failure(403, 'Forbidden', `forbidden: User "${user.username}" cannot ${method.toLowerCase()} path "${url.pathname}"`, {});
    }
    return serveNonResource(deps, path, segments, req, res);
  }

  // ---- resource endpoints ----
  const route = parseResourcePath(deps.table, segments);
  if (!route) throw pageNotFound();
  const { resource: r, namespace, name, subresource } = route;
  const q = url.searchParams;
  const isWatch = route.legacyWatch || q.get('watch') === 'true' || q.get('watch') === '1';
  let verb: string;
  switch (method) {
    case 'GET':
      verb = isWatch ? 'watch' : name ? 'get' : 'list';
      break;
    case 'POST':
      if (name && !subresource) throw methodNotAllowed();
      verb = 'create';
      break;
    case 'PUT':
      if (!name) throw methodNotAllowed();
      verb = 'update';
      break;
    case 'PATCH':
      if (!name) throw methodNotAllowed();
      verb = 'patch';
      break;
    case 'DELETE':
      verb = name ? 'delete' : 'deletecollection';
      break;
    default:
      throw methodNotAllowed();
  }
  if (r.virtual && !(method === 'POST' && !name)) throw methodNotAllowed();
  if (r.namespaced && name && !namespace) throw pageNotFound();
  if (r.namespaced && !namespace && !(verb === 'list' || verb === 'watch')) throw pageNotFound();
  if (subresource && !r.subresources.includes(subresource as never)) throw pageNotFound();
  if (subresource && !name) throw pageNotFound();

  const decision = authorize(
    user,
    {
      resource: {
        namespace,
        verb,
        group: r.group,
        version: r.version,
        resource: r.plural,
        subresource,
        name: verb === 'create' && !subresource ? undefined : name,
      },
    },
    deps.rbac,
  );
  if (!decision.allowed) {
    throw forbidden(r, name, forbiddenMessage(user, verb, r.plural, subresource, r.group, namespace));
  }

  const ctx: RequestContext = { user, dryRun: q.getAll('dryRun').includes('All'), fieldManager: q.get('fieldManager') ?? undefined, warnings };
  const table = wantsTable(req.headers.accept) && (verb === 'get' || verb === 'list' || verb === 'watch') && !subresource;
  const include = (q.get('includeObject') as IncludeObject | null) ?? 'Metadata';
  const reg = deps.registry;

  const bodyBuf = method === 'POST' || method === 'PUT' || method === 'PATCH' || method === 'DELETE' ? await readBody(req) : Buffer.alloc(0);
  const body = (): unknown => {
    if (method === 'PATCH') return bodyBuf.length ? JSON.parse(bodyBuf.toString('utf8')) : undefined;
    return decodeBody(bodyBuf, req.headers['content-type']);
  };

  if (r.virtual) return sendJson(res, 201, await serveReview(deps, r, namespace, user, body()));

  switch (verb) {
    case 'get': {
      const obj = subresource === 'scale' ? reg.getScale(r, namespace, name as string) : reg.get(r, namespace, name as string);
      if (table) return sendJson(res, 200, toTable(r, [obj], obj.metadata.resourceVersion ?? '', include));
      return sendJson(res, 200, obj);
    }
    case 'list': {
      const limit = q.get('limit');
      const result = reg.list(r, namespace, {
        labelSelector: q.get('labelSelector') ?? undefined,
        fieldSelector: q.get('fieldSelector') ?? undefined,
        limit: limit ? Number(limit) : undefined,
        continue: q.get('continue') ?? undefined,
      });
      const meta = {
        resourceVersion: result.resourceVersion,
        ...(result.continue ? { continue: result.continue, remainingItemCount: result.remainingItemCount } : {}),
      };
      if (table) {
        const items = result.items.map((o) => ({ apiVersion: apiVersionOf(r), kind: r.kind, ...o }));
        return sendJson(
          res,
          200,
          toTable(
            r,
            items,
            result.resourceVersion,
            include,
            result.continue ? { continue: result.continue, remainingItemCount: result.remainingItemCount } : {},
          ),
        );
      }
      return sendJson(res, 200, { kind: `${r.kind}List`, apiVersion: apiVersionOf(r), metadata: meta, items: result.items });
    }
    case 'watch': {
      const timeout = q.get('timeoutSeconds');
      const sendInitial = q.get('sendInitialEvents');
      const start = deps.watches.prepare({
        resource: r,
        namespace,
        name,
        labelSelector: parseLabelSelector(q.get('labelSelector')),
        fieldSelector: parseFieldSelector(q.get('fieldSelector'), r.fieldSelectors ?? []),
        resourceVersion: q.get('resourceVersion') ?? undefined,
        resourceVersionMatch: q.get('resourceVersionMatch') ?? undefined,
        timeoutSeconds: timeout ? Number(timeout) : undefined,
        allowWatchBookmarks: q.get('allowWatchBookmarks') === 'true',
        sendInitialEvents: sendInitial === null ? undefined : sendInitial === 'true',
        encode: table ? (o) => toTable(r, [o], o.metadata.resourceVersion ?? '', include) : undefined,
      });
      start(res);
      return;
    }
    case 'create': {
      if (subresource === 'eviction') return sendJson(res, 201, await evictPod(reg, namespace as string, name as string, body(), ctx), warnings);
      if (subresource === 'token') return sendJson(res, 201, await tokenRequest(reg, deps.issuer, namespace as string, name as string, body()));
      if (subresource) throw methodNotAllowed();
      const created = await reg.create(r, namespace, body(), ctx);
      return sendJson(res, 201, created, warnings);
    }
    case 'update': {
      if (subresource === 'scale') return sendJson(res, 200, await reg.updateScale(r, namespace, name as string, body(), ctx), warnings);
      if (subresource && subresource !== 'status' && subresource !== 'resize') throw methodNotAllowed();
      return sendJson(res, 200, await reg.update(r, namespace, name as string, body(), ctx, subresource), warnings);
    }
    case 'patch': {
      const type = patchTypeOf(req.headers['content-type']);
      let patchBody: unknown;
      try {
        patchBody = body();
      } catch (err) {
        throw badRequest(`error decoding patch: ${(err as Error).message}`);
      }
      if (subresource === 'scale') return sendJson(res, 200, await reg.patchScale(r, namespace, name as string, type, patchBody, ctx), warnings);
      if (subresource && subresource !== 'status' && subresource !== 'resize') throw methodNotAllowed();
      return sendJson(res, 200, await reg.patch(r, namespace, name as string, type, patchBody, ctx, subresource), warnings);
    }
    case 'delete': {
      const opts = deleteOptions(body(), q);
      if (opts.dryRun) ctx.dryRun = true;
      const result = await reg.delete(r, namespace, name as string, opts, ctx);
      return sendJson(res, result.code, result.object, warnings);
    }
    case 'deletecollection': {
      const opts = deleteOptions(body(), q);
      if (opts.dryRun) ctx.dryRun = true;
      const items = await reg.deleteCollection(
        r,
        namespace,
        { labelSelector: q.get('labelSelector') ?? undefined, fieldSelector: q.get('fieldSelector') ?? undefined },
        opts,
        ctx,
      );
      return sendJson(
        res,
        200,
        { kind: `${r.kind}List`, apiVersion: apiVersionOf(r), metadata: { resourceVersion: String(reg.store.currentResourceVersion()) }, items },
        warnings,
      );
    }
  }
  throw methodNotAllowed();
}

function deleteOptions(body: unknown, q: URLSearchParams): DeleteOptions & { dryRun?: boolean } {
  const b = (body ?? {}) as {
    propagationPolicy?: string;
    preconditions?: { uid?: string; resourceVersion?: string };
    gracePeriodSeconds?: number;
    orphanDependents?: boolean;
    dryRun?: string[];
  };
  const policy = q.get('propagationPolicy') ?? b.propagationPolicy ?? (b.orphanDependents === true ? 'Orphan' : undefined);
  if (policy !== undefined && !['Background', 'Foreground', 'Orphan'].includes(policy)) {
    throw failure(
      422,
      'Invalid',
      `DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: "${policy}": supported values: "Foreground", "Background", "Orphan", "nil"`,
    );
  }
  const grace = q.get('gracePeriodSeconds') ?? b.gracePeriodSeconds;
  return {
    ...(policy ? { propagationPolicy: policy as DeleteOptions['propagationPolicy'] } : {}),
    ...(b.preconditions ? { preconditions: b.preconditions } : {}),
    ...(grace !== undefined ? { gracePeriodSeconds: Number(grace) } : {}),
    dryRun: (b.dryRun ?? []).includes('All'),
  };
}

async function serveReview(deps: ServerDeps, r: ResourceType, namespace: string | undefined, user: UserInfo, body: unknown): Promise<unknown> {
  switch (r.kind) {
    case 'TokenReview':
      return tokenReview(body, deps.issuer, deps.lookup, deps.adminToken);
    case 'SelfSubjectReview':
      return selfSubjectReview(body, user);
    case 'SubjectAccessReview':
      return subjectAccessReview(body, deps.rbac);
    case 'LocalSubjectAccessReview':
      return localSubjectAccessReview(body, namespace ?? '', deps.rbac);
    case 'SelfSubjectAccessReview':
      return selfSubjectAccessReview(body, user, deps.rbac);
  }
  throw methodNotAllowed();
}

interface ResourceRoute {
  resource: ResourceType;
  namespace?: string;
  name?: string;
  subresource?: string;
  legacyWatch: boolean;
}

function isDiscoveryPath(segments: string[], table: ResourceTable): boolean {
  if (segments[0] === 'api') return segments.length <= 2;
  if (segments[0] === 'apis') {
    if (segments.length <= 2) return true;
    if (segments.length === 3) return table.all.some((r) => r.group === segments[1] && r.version === segments[2]);
  }
  return false;
}

function parseResourcePath(table: ResourceTable, segments: string[]): ResourceRoute | undefined {
  let group: string;
  let version: string;
  let rest: string[];
  if (segments[0] === 'api') {
    group = '';
    version = segments[1] ?? '';
    rest = segments.slice(2);
  } else {
    group = segments[1] ?? '';
    version = segments[2] ?? '';
    rest = segments.slice(3);
  }
  let legacyWatch = false;
  if (rest[0] === 'watch') {
    legacyWatch = true;
    rest = rest.slice(1);
  }
  let namespace: string | undefined;
  let plural: string;
  let name: string | undefined;
  let subresource: string | undefined;
  const nsScoped = rest[0] === 'namespaces' && rest.length >= 3 ? table.lookup(group, version, rest[2] as string) : undefined;
  if (nsScoped?.namespaced) {
    namespace = rest[1];
    plural = rest[2] as string;
    name = rest[3];
    subresource = rest[4];
    if (rest.length > 5) return undefined;
  } else {
    plural = rest[0] ?? '';
    name = rest[1];
    subresource = rest[2];
    if (rest.length > 3) return undefined;
  }
  const resource = table.lookup(group, version, plural);
  if (!resource) return undefined;
  return { resource, namespace, name, subresource, legacyWatch };
}

function serveNonResource(deps: ServerDeps, path: string, segments: string[], req: IncomingMessage, res: ServerResponse): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') throw methodNotAllowed();
  switch (path) {
    case '/version':
      return sendJson(res, 200, deps.version);
    case '/healthz':
    case '/livez':
    case '/readyz':
      res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end('ok');
      return;
    case '/.well-known/openid-configuration':
      return sendJson(res, 200, deps.issuer.openidConfiguration(`${deps.url()}/openid/v1/jwks`));
    case '/openid/v1/jwks':
      res.writeHead(200, { 'Content-Type': 'application/jwk-set+json' });
      res.end(JSON.stringify(deps.issuer.jwks));
      return;
    case '/api':
      return sendJson(res, 200, {
        kind: 'APIVersions',
        versions: ['v1'],
        serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: new URL(deps.url()).host }],
      });
    case '/apis':
      return sendJson(res, 200, apiGroupList(deps.table));
  }
  if (segments[0] === 'api' && segments.length === 2) {
    if (segments[1] !== 'v1') throw pageNotFound();
    return sendJson(res, 200, apiResourceList(deps.table, '', 'v1'));
  }
  if (segments[0] === 'apis' && segments.length === 2) {
    const versions = deps.table.groups().get(segments[1] as string);
    if (!versions) throw pageNotFound();
    return sendJson(res, 200, { kind: 'APIGroup', apiVersion: 'v1', ...apiGroup(segments[1] as string, versions) });
  }
  if (segments[0] === 'apis' && segments.length === 3) {
    return sendJson(res, 200, apiResourceList(deps.table, segments[1] as string, segments[2] as string));
  }
  if (path === '/openapi/v3') return sendJson(res, 200, openApiV3Index(deps.table));
  if (segments[0] === 'openapi' && segments[1] === 'v3') {
    const [kind, a, b] = segments.slice(2);
    const doc =
      kind === 'api' ? openApiV3GroupVersion(deps.table, '', a ?? '') : kind === 'apis' ? openApiV3GroupVersion(deps.table, a ?? '', b ?? '') : undefined;
    if (doc) return sendJson(res, 200, doc);
  }
  if (path === '/openapi/v2') {
    res.writeHead(200, { 'Content-Type': 'application/com.github.proto-openapi.spec.v2.v1.0+protobuf' });
    res.end(openApiV2Protobuf());
    return;
  }
  res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' });
  res.end('404 page not found\n');
}
