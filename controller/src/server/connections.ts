/**
 * Connection hygiene shared by the controller's listeners: how long an idle or slow
 * connection may stay, how many may be open, how large a request head may be, and a close
 * that lets requests in flight finish (bounded) instead of cutting them off.
 */
import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import { Server as TlsServer } from 'node:tls';

export interface ConnectionLimits {
  /** A keep-alive connection (or HTTP/2 session) without a request for this long is closed. */
  idleTimeoutMs: number;
  /** Longest wait for a request's headers, and for the TLS handshake. */
  headersTimeoutMs: number;
  /** Longest wait for a whole request, body included. */
  requestTimeoutMs: number;
  maxConnections: number;
  maxHeaderBytes: number;
}

/** Defaults of the configuration keys of the same names (controller/src/config.ts). */
export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = {
  idleTimeoutMs: 60_000,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  maxConnections: 4096,
  maxHeaderBytes: 16 * 1024,
};

/** Options for http(s).createServer: the head size limit (431 beyond it) and the TLS handshake deadline. */
export function serverOptions(l: ConnectionLimits): {
  maxHeaderSize: number;
  handshakeTimeout: number;
  requestTimeout: number;
  headersTimeout: number;
  keepAliveTimeout: number;
  connectionsCheckingInterval: number;
} {
  const requestTimeout = l.requestTimeoutMs;
  const headersTimeout = Math.min(l.headersTimeoutMs, requestTimeout);
  return {
    maxHeaderSize: l.maxHeaderBytes,
    handshakeTimeout: l.headersTimeoutMs,
    requestTimeout,
    headersTimeout,
    keepAliveTimeout: l.idleTimeoutMs,
    // Node checks the header and request deadlines this often (default 30 s, which would
    // stretch a 10 s headersTimeout to 40).
    connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(headersTimeout / 2))),
  };
}

/**
 * The timeouts and the connection cap on an HTTP/1.1 server. Node's own deadlines leave two
 * gaps (measured on Node 20): a connection that never sends a byte, and a kept-alive one that
 * never sends its next request, stay open. So each connection also gets a deadline, not an
 * inactivity timer: its first request's headers within headersTimeout, the next one within
 * idleTimeout of the last answer. With `upgrades`, an upgrade (the fleet's WebSocket) ends them.
 */
export function applyHttp1Limits(server: HttpServer | HttpsServer, l: ConnectionLimits, opts: { upgrades?: boolean } = {}): void {
  server.keepAliveTimeout = l.idleTimeoutMs;
  server.headersTimeout = Math.min(l.headersTimeoutMs, l.requestTimeoutMs);
  server.requestTimeout = l.requestTimeoutMs;
  server.maxConnections = l.maxConnections;
  const deadlines = new WeakMap<Socket, NodeJS.Timeout>();
  const expect = (socket: Socket, ms: number) => {
    clearTimeout(deadlines.get(socket));
    const timer = setTimeout(() => socket.destroy(), ms);
    timer.unref();
    deadlines.set(socket, timer);
  };
  const stop = (socket: Socket) => clearTimeout(deadlines.get(socket));
  // On HTTPS the request's socket is the TLS one, which 'secureConnection' gives.
  server.on(server instanceof TlsServer ? 'secureConnection' : 'connection', (socket: Socket) => {
    expect(socket, Math.min(l.headersTimeoutMs, l.requestTimeoutMs));
    socket.once('close', () => stop(socket));
  });
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const socket = req.socket;
    stop(socket);
    const next = () => {
      if (!socket.destroyed) expect(socket, l.idleTimeoutMs);
    };
    if (res.writableFinished) next();
    else res.once('finish', next);
  });
  // Only where something handles upgrades (the fleet's WebSocket server): an 'upgrade'
  // listener takes the socket away from Node, and without a handler behind it the connection
  // would hang. Elsewhere Node answers an Upgrade request as an ordinary one.
  if (opts.upgrades) server.on('upgrade', (req: IncomingMessage) => stop(req.socket));
}

/**
 * Stops accepting (`server.close`), calls `sweep` at once and every 50 ms to close what turned
 * idle, and after `timeoutMs` calls `cut` for whatever is left; resolves when the server has
 * closed or at the deadline.
 */
export function closeWithSweep(server: { close(cb: () => void): unknown }, sweep: () => void, cut: () => void, timeoutMs: number): Promise<void> {
  return new Promise<void>((resolve) => {
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearInterval(timer);
      clearTimeout(deadline);
      resolve();
    };
    server.close(() => finish());
    sweep();
    const timer = setInterval(sweep, 50);
    const deadline = setTimeout(() => {
      cut();
      finish();
    }, timeoutMs);
  });
}

/**
 * Stops accepting, closes idle keep-alive connections, lets busy ones finish their request
 * (they are closed as they turn idle) and, after `timeoutMs`, cuts whatever is left.
 */
export function closeGracefully(server: HttpServer | HttpsServer, timeoutMs: number): Promise<void> {
  return closeWithSweep(
    server,
    () => server.closeIdleConnections(),
    () => server.closeAllConnections(),
    timeoutMs,
  );
}
