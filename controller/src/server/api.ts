/**
 * The REST API server (`/api/v1/...`, `/healthz`, `/readyz`). Callers present a bearer token;
 * the Authenticator decides who they are (admin token in local mode, TokenReview in a
 * cluster). Authorization of individual actions is the handlers' business.
 */
import { createServer, type Server } from 'node:http';
import { ErrorCodes, NemuError } from '../../../common/src/errors.ts';
import type { Logger } from '../../../common/src/log.ts';
import { parseJson, readBody, send } from './http.ts';
import { errorBody, isApiResponse, logUnexpected, type ApiRequest, type Authenticator, type Router } from './router.ts';

export interface ApiServerOptions {
  router: Router;
  auth: Authenticator;
  log: Logger;
  maxBodyBytes?: number;
}

export function createApiServer(opts: ApiServerOptions): Server {
  const limit = opts.maxBodyBytes ?? 1024 * 1024;
  return createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const method = req.method ?? 'GET';
    const started = Date.now();
    void (async () => {
      try {
        const { route, params, allowed } = opts.router.match(method, url.pathname);
        if (!route) {
          if (allowed.length > 0) {
            throw new NemuError(ErrorCodes.BAD_REQUEST, `${method} is not allowed on ${url.pathname}; use ${allowed.join(' or ')}`, { status: 405 });
          }
          throw new NemuError(ErrorCodes.NOT_FOUND, `no such endpoint: ${method} ${url.pathname}; see the API reference in README.md`, { status: 404 });
        }
        let body: Buffer | undefined;
        const raw = async () => (body ??= await readBody(req, limit));
        const request: ApiRequest = {
          method,
          path: url.pathname,
          params,
          query: url.searchParams,
          headers: req.headers,
          raw,
          json: async <T>() => parseJson<T>(await raw()),
        };
        if (!route.public) {
          const user = await opts.auth.authenticate(req.headers.authorization);
          if (!user) {
            throw new NemuError(ErrorCodes.UNAUTHORIZED, 'missing or invalid bearer token; pass --token (CLI) or an Authorization: Bearer header', { status: 401 });
          }
          request.user = user;
        }
        const out = await route.handler(request);
        send(res, isApiResponse(out) ? out : { status: 200, body: out });
        opts.log.debug({ method, path: url.pathname, status: res.statusCode, ms: Date.now() - started }, 'api request');
      } catch (e) {
        logUnexpected(opts.log, e, `api ${method} ${url.pathname} failed`);
        const { status, body } = errorBody(e);
        if (!res.headersSent) send(res, { status, body });
        else res.destroy();
      }
    })();
  });
}
