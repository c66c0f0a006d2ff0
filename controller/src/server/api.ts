/**
 * The REST API server (`/api/v1/...`, `/healthz`, `/readyz`). For every request that is not a
 * health probe, in this order: the caller is authenticated from its bearer token (admin token
 * in local mode, TokenReview in a cluster) — 401 otherwise; held to its identity's rate limit
 * — 429 with Retry-After; authorized for the route's declared permission (SubjectAccessReview
 * in a cluster) — 403 naming the permission; then served. Every state-changing call is
 * written to the audit log with its outcome, refusals included.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { Registry } from 'prom-client';
import { Counter } from 'prom-client';

import { ErrorCodes, isNemuError, NemuError } from '#common/errors.js';
import type { Logger } from '#common/log.js';

import type { AuditLog } from '../audit/log.ts';
import { type Access, type Authorizer, requireOnObject, requirePermission } from './access.ts';
import { applyHttp1Limits, type ConnectionLimits, DEFAULT_CONNECTION_LIMITS, serverOptions } from './connections.ts';
import { parseJson, readBody, send } from './http.ts';
import { type RateLimit, RateLimiter } from './rate-limit.ts';
import { type ApiRequest, type Authenticator, errorBody, type Identity, isApiResponse, logUnexpected, type Route, type Router } from './router.ts';

export interface ApiServerOptions {
  router: Router;
  auth: Authenticator;
  authorizer: Authorizer;
  log: Logger;
  audit?: AuditLog;
  metrics?: Registry;
  maxBodyBytes?: number;
  /** Per identity; default 20/s, bursts of 40. */
  rateLimit?: RateLimit;
  /** Deepest nesting of a JSON body (default 128). */
  maxBodyDepth?: number;
  /** Idle, header and request timeouts, connection cap, head size (431 beyond it). */
  connections?: Partial<ConnectionLimits>;
  /** HTTPS with this certificate; plain HTTP without (local mode on loopback only). */
  tls?: { cert: string; key: string };
}

export interface ApiServer {
  server: Server | HttpsServer;
  setCertificate(cert: string, key: string): void;
}

/** The path of a request target; undefined when it is not one (absolute forms the URL parser rejects, `*`, garbage). */
function parseTarget(target: string | undefined): { path: string; query: URLSearchParams } | undefined {
  try {
    const url = new URL(target ?? '/', 'http://localhost');
    return { path: url.pathname, query: url.searchParams };
  } catch {
    return undefined;
  }
}

function namespaceOf(scope: Exclude<Access['scope'], object>, params: Record<string, string>, query: URLSearchParams): string | undefined {
  if (scope === 'cluster') return undefined;
  if (scope === 'query') return query.get('namespace') || undefined;
  return params[scope.slice('param:'.length)];
}

/** `mutation 01J…`: how a refusal names the object of a route, from its parameters. */
function describeObject(params: Record<string, string>): string {
  const id = params.id ?? Object.values(params)[0];
  return id ? `object ${id}` : 'the object named in the request';
}

function actionOf(access: Access): string {
  return `${access.verb} ${access.subresource ? `${access.resource}/${access.subresource}` : access.resource}`;
}

export function createApiServer(opts: ApiServerOptions): ApiServer {
  const api = new RestApi(opts);
  const listener = (req: IncomingMessage, res: ServerResponse) => void api.handle(req, res);
  const conn: ConnectionLimits = { ...DEFAULT_CONNECTION_LIMITS, ...opts.connections };
  if (!opts.tls) {
    const plain = createHttpServer(serverOptions(conn), listener);
    applyHttp1Limits(plain, conn);
    return { server: plain, setCertificate: () => {} };
  }
  const server = createHttpsServer({ cert: opts.tls.cert, key: opts.tls.key, minVersion: 'TLSv1.2', ...serverOptions(conn) }, listener);
  applyHttp1Limits(server, conn);
  return { server, setCertificate: (cert, key) => server.setSecureContext({ cert, key, minVersion: 'TLSv1.2' }) };
}

type Outcome = 'succeeded' | 'denied' | 'failed';

/** One request's way through the guards: route, caller, budget, permission, handler, audit. */
class RestApi {
  private readonly limiter: RateLimiter;
  /**
   * Refused tokens are limited per client address, so a flood of made-up tokens cannot turn
   * into a flood of TokenReviews: past the budget the address is answered 429 before any
   * review. Generous (a shared proxy address carries many users); off with the per-identity limit.
   */
  private readonly failedAuth: RateLimiter;
  private readonly requests: Counter<'method' | 'route' | 'code'> | undefined;

  constructor(private readonly opts: ApiServerOptions) {
    this.limiter = new RateLimiter(opts.rateLimit ?? { rate: 20, burst: 40 });
    const rate = opts.rateLimit?.rate ?? 20;
    this.failedAuth = new RateLimiter({ rate: rate > 0 ? Math.max(5, rate) : 0, burst: Math.max(100, opts.rateLimit?.burst ?? 40) });
    this.requests = opts.metrics
      ? new Counter({
          name: 'nemutator_api_requests_total',
          help: 'REST API requests, by method, route pattern and status code.',
          labelNames: ['method', 'route', 'code'],
          registers: [opts.metrics],
        })
      : undefined;
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const started = Date.now();
    let pattern = 'unmatched';
    try {
      const { route, request } = this.route(req, method);
      pattern = '/' + route.parts.join('/');
      if (route.access === 'public') {
        const out = await route.handler(request);
        send(res, isApiResponse(out) ? out : { status: 200, body: out });
      } else {
        await this.guarded(req, res, route, route.access, request);
      }
      this.opts.log.debug({ method, path: request.path, status: res.statusCode, ms: Date.now() - started }, 'api request');
    } catch (e) {
      logUnexpected(this.opts.log, e, `api ${method} ${pattern} failed`);
      const { status, body } = errorBody(e);
      const headers: Record<string, string> = e instanceof RateLimitedError ? { 'retry-after': String(e.retryAfter) } : {};
      if (!res.headersSent) send(res, { status, body, headers });
      else res.destroy();
    } finally {
      this.requests?.inc({ method, route: pattern, code: String(res.statusCode) });
    }
  }

  /** The route of a request and the request as handlers see it; 400, 404 or 405 otherwise. */
  private route(req: IncomingMessage, method: string): { route: Route; request: ApiRequest } {
    const target = parseTarget(req.url);
    if (!target) throw new NemuError(ErrorCodes.BAD_REQUEST, 'the request target is not a valid path', { status: 400 });
    const { route, params, allowed } = this.opts.router.match(method, target.path);
    if (!route) {
      if (allowed.length > 0)
        throw new NemuError(ErrorCodes.BAD_REQUEST, `${method} is not allowed on ${target.path}; use ${allowed.join(' or ')}`, { status: 405 });
      throw new NemuError(ErrorCodes.NOT_FOUND, `no such endpoint: ${method} ${target.path}; see the API reference in README.md`, { status: 404 });
    }
    let body: Buffer | undefined;
    const raw = async () => (body ??= await readBody(req, this.opts.maxBodyBytes ?? 1024 * 1024));
    const request: ApiRequest = {
      method,
      path: target.path,
      params,
      query: target.query,
      headers: req.headers,
      raw,
      json: async <T>() => parseJson<T>(await raw(), this.opts.maxBodyDepth),
      authorize: async () => {
        throw new NemuError(ErrorCodes.INTERNAL, 'a public route has no permission to check', { status: 500 });
      },
      audit: () => {},
    };
    return { route, request };
  }

  /** Who is calling (401), within their budget (429); the caller. */
  private async caller(req: IncomingMessage): Promise<Identity> {
    const address = req.socket.remoteAddress ?? '';
    // A token accepted recently passes even from a blocked address (a proxy shared by many users).
    const blocked = this.failedAuth.peek(address);
    if (blocked > 0 && !this.opts.auth.knows?.(req.headers.authorization)) throw new RateLimitedError(blocked, 'this address (too many refused tokens)');
    const user = await this.opts.auth.authenticate(req.headers.authorization);
    if (!user) {
      this.failedAuth.take(address);
      throw new NemuError(
        ErrorCodes.UNAUTHORIZED,
        'missing, invalid or expired bearer token, or one issued for another audience; pass --token (CLI) or an Authorization: Bearer header',
        { status: 401 },
      );
    }
    const wait = this.limiter.take(`${user.username}\u0000${user.groups.join(',')}`);
    if (wait > 0) throw new RateLimitedError(wait, user.username);
    return user;
  }

  /** A route with a permission: checked before its handler runs, and audited when it changes something. */
  private async guarded(req: IncomingMessage, res: ServerResponse, route: Route, access: Access, request: ApiRequest): Promise<void> {
    const user = await this.caller(req);
    request.user = user;
    const target: Record<string, string> = { ...request.params };
    request.audit = (t) => Object.assign(target, t);
    let namespace: string | undefined;
    request.authorize = async (located, what) => {
      if (located) target.namespace = namespace ??= located;
      await requireOnObject(this.opts.authorizer, user, access, located, what);
    };
    const record = (outcome: Outcome, status: number, code?: string) =>
      route.method === 'GET' || !this.opts.audit
        ? undefined
        : this.opts.audit.record({
            user: user.username,
            groups: user.groups,
            action: actionOf(access),
            method: route.method,
            path: request.path,
            target,
            ...(namespace ? { namespace } : {}),
            outcome,
            status,
            ...(code ? { code } : {}),
          });
    try {
      if (typeof access.scope === 'object' && 'object' in access.scope) {
        await request.authorize(await access.scope.object(request), describeObject(request.params));
      } else {
        namespace = typeof access.scope === 'object' ? await access.scope.request(request) : namespaceOf(access.scope, request.params, request.query);
        if (namespace) target.namespace = namespace;
        await requirePermission(this.opts.authorizer, user, access, namespace);
      }
      const out = await route.handler(request);
      const answer = isApiResponse(out) ? out : { status: 200, body: out };
      await record('succeeded', answer.status ?? 200);
      send(res, answer);
    } catch (e) {
      const code = isNemuError(e) ? e.code : ErrorCodes.INTERNAL;
      await record(code === ErrorCodes.FORBIDDEN ? 'denied' : 'failed', isNemuError(e) ? e.status : 500, code);
      throw e;
    }
  }
}

class RateLimitedError extends NemuError {
  constructor(
    readonly retryAfter: number,
    who: string,
  ) {
    super(ErrorCodes.RATE_LIMITED, `too many requests from ${who}; retry in ${retryAfter} s (apiRateLimit, apiRateBurst)`, { status: 429 });
  }
}
