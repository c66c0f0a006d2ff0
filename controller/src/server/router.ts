/**
 * A small JSON router for the REST API (/api/v1/...). Handlers take a parsed request and
 * return a value; errors become `{ code, message }` answers with the right status. Request
 * bodies are size-limited and must be JSON. Every route declares who may call it (an
 * `Access`: verb, resource and scope in nemutator.io, see access.ts) or says it is public;
 * a route without either is refused at registration, so no route is added unguarded.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';

import { ErrorCodes, isNemuError, NemuError } from '#common/errors.js';
import type { Logger } from '#common/log.js';

import type { Access } from './access.ts';

export interface Identity {
  username: string;
  groups: string[];
  uid?: string;
  /** The authenticator's extra attributes (scopes, node name…), passed on to SubjectAccessReview. */
  extra?: Record<string, string[]>;
}

export interface ApiRequest {
  method: string;
  path: string;
  params: Record<string, string>;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  /** The caller, once authenticated (undefined on public routes). */
  user?: Identity;
  /**
   * Checks the route's permission on a second stored object the request names (a profile's
   * `base`), as the route's own object was checked: `located` is its namespace, null when
   * there is no such object.
   */
  authorize(located: string | undefined | null, what: string): Promise<void>;
  /** Adds what the action was about to its audit record (names and references, never values). */
  audit(target: Record<string, string>): void;
  /** The JSON body; throws NEMU_ERR_BAD_REQUEST when it is not JSON, NEMU_ERR_PAYLOAD_TOO_LARGE past the limit. */
  json<T = unknown>(): Promise<T>;
  raw(): Promise<Buffer>;
}

export interface ApiResponse {
  status?: number;
  body?: unknown;
  /** Raw bytes or a stream instead of JSON (profiles, flamegraphs, NDJSON). */
  content?: Buffer | string | Readable;
  contentType?: string;
  headers?: Record<string, string>;
}

export type Handler = (req: ApiRequest) => Promise<ApiResponse | unknown> | ApiResponse | unknown;

/** How a caller is recognised; the controller picks local (admin token) or cluster (TokenReview). */
export interface Authenticator {
  authenticate(authorization: string | undefined): Promise<Identity | undefined>;
  /** Whether this credential was accepted recently (answers without asking anyone). */
  knows?(authorization: string | undefined): boolean;
}

export interface Route {
  method: string;
  parts: string[];
  handler: Handler;
  /** `public`: no bearer token needed (health probes only). */
  access: Access | 'public';
}

const VERBS = new Set(['get', 'list', 'create', 'update', 'delete']);

function checkAccess(method: string, pattern: string, access: Access | 'public'): void {
  if (access === 'public') return;
  const ok =
    typeof access === 'object' &&
    access !== null &&
    VERBS.has(access.verb) &&
    /^[a-z]+$/.test(access.resource) &&
    (access.subresource === undefined || /^[a-z]+$/.test(access.subresource)) &&
    (typeof access.scope === 'object'
      ? access.scope !== null && ('object' in access.scope ? typeof access.scope.object === 'function' : typeof access.scope.request === 'function')
      : ['cluster', 'query'].includes(access.scope) || /^param:[A-Za-z]+$/.test(access.scope));
  if (!ok) throw new Error(`route ${method} ${pattern} declares no valid permission; every route needs {verb, resource, scope} or 'public'`);
  if (typeof access.scope === 'string' && access.scope.startsWith('param:') && !pattern.includes(`{${access.scope.slice(6)}}`)) {
    throw new Error(`route ${method} ${pattern} takes its namespace from {${access.scope.slice(6)}}, which the path lacks`);
  }
}

export function isApiResponse(v: unknown): v is ApiResponse {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o);
  if (keys.length === 0 || !keys.every((k) => ['status', 'body', 'content', 'contentType', 'headers'].includes(k))) return false;
  // `{ status: 'ok' }` is a body, `{ status: 201, body }` a response.
  return 'status' in o ? typeof o.status === 'number' : 'body' in o || 'content' in o;
}

export class Router {
  private readonly routes: Route[] = [];

  add(method: string, pattern: string, access: Access | 'public', handler: Handler): this {
    checkAccess(method, pattern, access);
    this.routes.push({ method: method.toUpperCase(), parts: pattern.split('/').filter(Boolean), handler, access });
    return this;
  }

  get(pattern: string, access: Access | 'public', handler: Handler): this {
    return this.add('GET', pattern, access, handler);
  }
  post(pattern: string, access: Access, handler: Handler): this {
    return this.add('POST', pattern, access, handler);
  }
  put(pattern: string, access: Access, handler: Handler): this {
    return this.add('PUT', pattern, access, handler);
  }
  delete(pattern: string, access: Access, handler: Handler): this {
    return this.add('DELETE', pattern, access, handler);
  }

  /** Finds the route; `allowed` lists the methods of the path when only the method is wrong. */
  match(method: string, path: string): { route?: Route; params: Record<string, string>; allowed: string[] } {
    const parts = path.split('/').filter(Boolean);
    const allowed: string[] = [];
    for (const route of this.routes) {
      if (route.parts.length !== parts.length) continue;
      const params: Record<string, string> = {};
      let ok = true;
      for (let i = 0; i < parts.length; i++) {
        const want = route.parts[i]!;
        const got = parts[i]!;
        if (want.startsWith('{') && want.endsWith('}')) {
          try {
            params[want.slice(1, -1)] = decodeURIComponent(got);
          } catch {
            ok = false;
            break;
          }
        } else if (want !== got) {
          ok = false;
          break;
        }
      }
      if (!ok) continue;
      if (route.method === method.toUpperCase()) return { route, params, allowed };
      allowed.push(route.method);
    }
    return { params: {}, allowed };
  }

  /** Every route with its permission, for docs and tests. */
  list(): Array<{ method: string; pattern: string; access: Access | 'public' }> {
    return this.routes.map((r) => ({ method: r.method, pattern: '/' + r.parts.join('/'), access: r.access }));
  }
}

export function errorBody(e: unknown): { status: number; body: { code: string; message: string } } {
  if (isNemuError(e)) return { status: e.status, body: e.toJSON() };
  return { status: 500, body: { code: ErrorCodes.INTERNAL, message: 'internal error; the controller log has the details' } };
}

export function logUnexpected(log: Logger, e: unknown, what: string): void {
  if (!isNemuError(e) || e.status >= 500) log.error({ err: e }, what);
}

export { NemuError };
