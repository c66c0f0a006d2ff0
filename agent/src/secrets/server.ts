/**
 * HTTP/1.1 over the node's unix socket: GET /v1/secrets, GET /v1/secrets/watch (NDJSON),
 * POST /v1/ack. Each connection's peer is identified by the kernel at accept time
 * (SO_PEERCRED); each request by that process (re-checked against pid reuse) and its pod
 * token. Errors are JSON `{code, message}`; garbage, oversized and slow requests are
 * answered and closed without disturbing anyone else.
 */
import { chmod, lstat, mkdir, unlink } from 'node:fs/promises';
import http from 'node:http';
import type { Socket } from 'node:net';
import { dirname } from 'node:path';
import { isNemuError, type NemuError } from '../../../common/src/errors.ts';
import type { Logger } from '../../../common/src/log.ts';
import { secretsError, SecretsErrors } from './errors.ts';
import { identifyProcess, stillSameProcess, uptimeTicksSync, type CallerProcess } from './identity.ts';
import { peerCredOf, type PeerCred } from './peercred.ts';
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

interface Connection {
  cred?: PeerCred;
  credError?: NemuError;
  acceptedAtTicks: number;
  process?: Promise<CallerProcess>;
  /** Last time the pid was confirmed to still be the process that connected. */
  checkedAt?: number;
}

const ERROR_HEAD = (status: number, reason: string, body: string) =>
  `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`;

export async function startSocketServer(opts: SocketServerOptions): Promise<SocketServer> {
  const { service, log } = opts;
  const maxBody = opts.maxBodyBytes ?? 16 * 1024;
  const connections = new WeakMap<Socket, Connection>();
  const buckets = new Map<string, { tokens: number; at: number }>();
  const open = new Set<Socket>();

  const allow = (podUid: string): boolean => {
    if (opts.rateLimit <= 0) return true;
    const now = Date.now();
    const b = buckets.get(podUid) ?? { tokens: opts.rateLimit * 2, at: now };
    b.tokens = Math.min(opts.rateLimit * 2, b.tokens + ((now - b.at) / 1000) * opts.rateLimit);
    b.at = now;
    buckets.set(podUid, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  };

  const sendError = (res: http.ServerResponse, err: unknown) => {
    const e = isNemuError(err) ? err : secretsError('INTERNAL', 'the agent failed to answer; see its log');
    if (!isNemuError(err)) log.error({ err: { message: (err as Error).message, stack: (err as Error).stack } }, 'secrets socket request failed');
    if (res.headersSent) return void res.destroy();
    const body = JSON.stringify(e.toJSON());
    res.writeHead(e.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
  };

  const readBody = (req: http.IncomingMessage): Promise<unknown> =>
    new Promise((resolve, reject) => {
      const declared = Number(req.headers['content-length'] ?? 0);
      if (declared > maxBody) return reject(secretsError('TOO_LARGE', `request bodies are limited to ${maxBody} bytes`));
      const chunks: Buffer[] = [];
      let size = 0;
      req.on('data', (c: Buffer) => {
        size += c.length;
        if (size > maxBody) {
          reject(secretsError('TOO_LARGE', `request bodies are limited to ${maxBody} bytes`));
          req.pause();
          return;
        }
        chunks.push(c);
      });
      req.on('end', () => {
        try {
          resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
        } catch {
          reject(secretsError('BAD_REQUEST', 'the body is not JSON'));
        }
      });
      req.on('error', reject);
    });

  async function identify(req: http.IncomingMessage): Promise<CallerProcess> {
    const conn = connections.get(req.socket);
    if (!conn) throw secretsError('NOT_A_POD', 'unknown connection');
    if (conn.credError) throw conn.credError;
    conn.process ??= identifyProcess(conn.cred!, conn.acceptedAtTicks, opts.procRoot);
    const proc = await conn.process;
    // Re-checked at most every 250 ms per connection: a read of /proc costs more than the rest of a cached read.
    const now = Date.now();
    if (conn.checkedAt === undefined || now - conn.checkedAt > 250) {
      if (!stillSameProcess(proc, opts.procRoot)) throw secretsError('NOT_A_POD', `process ${proc.pid} that opened this connection is gone`);
      conn.checkedAt = now;
    }
    return proc;
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://agent');
    } catch {
      throw secretsError('BAD_REQUEST', 'the request target is not a path; the socket serves GET /v1/secrets, GET /v1/secrets/watch and POST /v1/ack');
    }
    const route = `${req.method} ${url.pathname}`;
    if (!['GET /v1/secrets', 'GET /v1/secrets/watch', 'POST /v1/ack'].includes(route)) {
      throw secretsError('NO_ROUTE', `no ${route}; the socket serves GET /v1/secrets, GET /v1/secrets/watch and POST /v1/ack`);
    }
    let proc: CallerProcess | undefined;
    let caller: Caller | undefined;
    try {
      proc = await identify(req);
      if (!allow(proc.podUid)) throw secretsError('RATE_LIMITED', `pod ${proc.podUid} sends more than ${opts.rateLimit} requests per second; slow down`);
      const auth = req.headers.authorization;
      const token = auth?.startsWith('Bearer ') ? auth.slice(7).trim() : undefined;
      const container = req.headers['x-nemutator-container'];
      caller = await service.authenticate(proc, token, typeof container === 'string' ? container : undefined);
    } catch (err) {
      service.deny({ ...(proc ? { process: proc } : {}) }, (err as NemuError).code ?? 'NEMU_ERR_SECRETS_INTERNAL');
      throw err;
    }

    if (route === 'GET /v1/secrets') {
      const doc = await service.secretsFor(caller, url.searchParams.get('path') ?? undefined);
      const body = JSON.stringify(doc);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' }).end(body);
      return;
    }
    if (route === 'POST /v1/ack') {
      const body = (await readBody(req)) as { path?: unknown; version?: unknown } | null;
      service.ack(caller, body?.path, body?.version);
      res.writeHead(204).end();
      return;
    }
    // Watch: NDJSON, one line per new version; an empty line every heartbeat keeps dead peers from lingering.
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

  const server = http.createServer({ maxHeaderSize: 8 * 1024, requestTimeout: 30_000, headersTimeout: 10_000, keepAliveTimeout: 5_000 }, (req, res) => {
    handle(req, res).catch((err: unknown) => sendError(res, err));
  });
  server.maxConnections = 20_000;
  server.on('connection', (socket: Socket) => {
    const conn: Connection = { acceptedAtTicks: uptimeTicksSync(opts.procRoot) };
    try {
      conn.cred = peerCredOf(socket);
    } catch (err) {
      conn.credError = isNemuError(err) ? err : secretsError('NOT_A_POD', `cannot identify the peer: ${(err as Error).message}`);
    }
    connections.set(socket, conn);
    open.add(socket);
    socket.on('close', () => open.delete(socket));
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    if (!socket.writable) return void socket.destroy();
    const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
    const [code, status] = tooLarge ? SecretsErrors.TOO_LARGE : SecretsErrors.BAD_REQUEST;
    const message = tooLarge ? 'request headers are limited to 8 KiB' : 'not an HTTP/1.1 request';
    socket.end(ERROR_HEAD(status, tooLarge ? 'Payload Too Large' : 'Bad Request', JSON.stringify({ code, message })));
  });

  await mkdir(dirname(opts.path), { recursive: true });
  const existing = await lstat(opts.path).catch(() => undefined);
  if (existing?.isSocket()) await unlink(opts.path);
  else if (existing) throw secretsError('INTERNAL', `${opts.path} exists and is not a socket; remove it or set socketPath`);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    // A deep backlog: every pod of a node may (re)connect at once after an agent restart.
    server.listen({ path: opts.path, backlog: 4096 }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  await chmod(opts.path, opts.mode);

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
