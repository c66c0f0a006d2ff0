/**
 * HTTP/1.1 over the node's unix socket: GET /v1/secrets, GET /v1/secrets/watch (NDJSON),
 * POST /v1/ack. Each connection's peer is identified by the kernel at accept time
 * (SO_PEERCRED, connections.ts); each request by that process (re-checked against pid reuse)
 * and its pod token. Errors are JSON `{code, message}`; garbage, oversized and slow requests
 * are answered and closed without disturbing anyone else.
 */
import { chmod, lstat, mkdir, unlink } from 'node:fs/promises';
import http from 'node:http';
import type { Socket } from 'node:net';
import { dirname } from 'node:path';

import type { NemuError } from '#common/errors.js';
import type { Logger } from '#common/log.js';

import { AgentErrorCodes } from '../errors.ts';
import { Connections } from './connections.ts';
import { secretsError, SecretsErrors } from './errors.ts';
import { rawErrorAnswer, readJsonBody, sendError } from './http.ts';
import type { CallerProcess } from './identity.ts';
import { PodRateLimiter } from './rate-limit.ts';
import type { Caller, SecretsService } from './service.ts';

export interface SocketServerOptions {
  path: string;
  mode: number;
  procRoot: string;
  service: SecretsService;
  log: Logger;
  /** Requests per second per pod (bursts of twice that); 0 = unlimited. */
  rateLimit: number;
  maxBodyBytes?: number;
  heartbeatMs?: number;
}

export interface SocketServer {
  path: string;
  stop(): Promise<void>;
}

const ROUTES = ['GET /v1/secrets', 'GET /v1/secrets/watch', 'POST /v1/ack'];

/** Answers one request: who is calling, then the route. */
function requestHandler(opts: SocketServerOptions, connections: Connections, limiter: PodRateLimiter) {
  const { service } = opts;
  const maxBody = opts.maxBodyBytes ?? 16 * 1024;

  async function authenticate(req: http.IncomingMessage): Promise<Caller> {
    let proc: CallerProcess | undefined;
    try {
      proc = await connections.identify(req);
      if (!limiter.allow(proc.podUid))
        throw secretsError('RATE_LIMITED', `pod ${proc.podUid} sends more than ${opts.rateLimit} requests per second; slow down`);
      const auth = req.headers.authorization;
      const token = auth?.startsWith('Bearer ') ? auth.slice(7).trim() : undefined;
      const container = req.headers['x-nemutator-container'];
      return await service.authenticate(proc, token, typeof container === 'string' ? container : undefined);
    } catch (err) {
      service.deny({ ...(proc ? { process: proc } : {}) }, (err as NemuError).code ?? AgentErrorCodes.SECRETS_INTERNAL);
      throw err;
    }
  }

  // Watch: NDJSON, one line per new version; an empty line every heartbeat keeps dead peers from lingering.
  function watch(req: http.IncomingMessage, res: http.ServerResponse, caller: Caller): void {
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
    res.flushHeaders();
    req.socket.setTimeout(0);
    const heartbeat = setInterval(() => res.write('\n'), opts.heartbeatMs ?? 25_000);
    heartbeat.unref();
    const unsubscribe = service.watch(
      caller,
      (line) => res.write(`${JSON.stringify(line)}\n`),
      () => res.end(),
    );
    res.on('close', () => {
      clearInterval(heartbeat);
      unsubscribe();
    });
  }

  return async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://agent');
    } catch {
      throw secretsError('BAD_REQUEST', 'the request target is not a path; the socket serves GET /v1/secrets, GET /v1/secrets/watch and POST /v1/ack');
    }
    const route = `${req.method} ${url.pathname}`;
    if (!ROUTES.includes(route)) throw secretsError('NO_ROUTE', `no ${route}; the socket serves GET /v1/secrets, GET /v1/secrets/watch and POST /v1/ack`);
    const caller = await authenticate(req);
    if (route === 'GET /v1/secrets') {
      const body = JSON.stringify(await service.secretsFor(caller, url.searchParams.get('path') ?? undefined));
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' }).end(body);
    } else if (route === 'POST /v1/ack') {
      const body = (await readJsonBody(req, maxBody)) as { path?: unknown; version?: unknown } | null;
      service.ack(caller, body?.path, body?.version);
      res.writeHead(204).end();
    } else {
      watch(req, res, caller);
    }
  };
}

/** Requests the HTTP parser refused are answered in JSON too, then closed. */
function answerClientError(err: NodeJS.ErrnoException, socket: Socket): void {
  if (!socket.writable) return void socket.destroy();
  const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
  const [code, status] = tooLarge ? SecretsErrors.TOO_LARGE : SecretsErrors.BAD_REQUEST;
  const message = tooLarge ? 'request headers are limited to 8 KiB' : 'not an HTTP/1.1 request';
  socket.end(rawErrorAnswer(status, tooLarge ? 'Payload Too Large' : 'Bad Request', JSON.stringify({ code, message })));
}

/** Listens on `path` (replacing a stale socket, never another file) with `mode`. */
async function listenOnSocket(server: http.Server, path: string, mode: number): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const existing = await lstat(path).catch(() => undefined);
  if (existing?.isSocket()) await unlink(path);
  else if (existing) throw secretsError('INTERNAL', `${path} exists and is not a socket; remove it or set socketPath`);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    // A deep backlog: every pod of a node may (re)connect at once after an agent restart.
    server.listen({ path, backlog: 4096 }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  await chmod(path, mode);
}

export async function startSocketServer(opts: SocketServerOptions): Promise<SocketServer> {
  const connections = new Connections(opts.procRoot);
  const handle = requestHandler(opts, connections, new PodRateLimiter(opts.rateLimit));
  const open = new Set<Socket>();
  const server = http.createServer({ maxHeaderSize: 8 * 1024, requestTimeout: 30_000, headersTimeout: 10_000, keepAliveTimeout: 5_000 }, (req, res) => {
    handle(req, res).catch((err: unknown) => sendError(res, err, opts.log));
  });
  server.maxConnections = 20_000;
  server.on('connection', (socket: Socket) => {
    connections.accepted(socket);
    open.add(socket);
    socket.on('close', () => open.delete(socket));
  });
  server.on('clientError', answerClientError);
  await listenOnSocket(server, opts.path, opts.mode);
  return {
    path: opts.path,
    async stop() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of open) s.destroy();
      });
      await unlink(opts.path).catch(() => undefined);
    },
  };
}
