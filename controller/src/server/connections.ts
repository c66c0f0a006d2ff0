/**
 * Connection hygiene shared by the controller's listeners: how long an idle or slow
 * connection may stay, how many may be open, how large a request head may be, and a close
 * that lets requests in flight finish (bounded) instead of cutting them off.
 */
import type { Server as HttpServer } from 'node:http';
import type { Server as HttpsServer } from 'node:https';

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
export function serverOptions(l: ConnectionLimits): { maxHeaderSize: number; handshakeTimeout: number; requestTimeout: number; headersTimeout: number; keepAliveTimeout: number } {
  const requestTimeout = l.requestTimeoutMs;
  return { maxHeaderSize: l.maxHeaderBytes, handshakeTimeout: l.headersTimeoutMs, requestTimeout, headersTimeout: Math.min(l.headersTimeoutMs, requestTimeout), keepAliveTimeout: l.idleTimeoutMs };
}

/** The timeouts and the connection cap on an HTTP/1.1 server (Node checks the timeouts every second or so). */
export function applyHttp1Limits(server: HttpServer | HttpsServer, l: ConnectionLimits): void {
  server.keepAliveTimeout = l.idleTimeoutMs;
  server.headersTimeout = Math.min(l.headersTimeoutMs, l.requestTimeoutMs);
  server.requestTimeout = l.requestTimeoutMs;
  server.maxConnections = l.maxConnections;
}

/**
 * Stops accepting, closes idle keep-alive connections, lets busy ones finish their request
 * (they are closed as they turn idle) and, after `timeoutMs`, cuts whatever is left.
 */
export function closeGracefully(server: HttpServer | HttpsServer, timeoutMs: number): Promise<void> {
  return new Promise<void>((resolve) => {
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearInterval(sweep);
      clearTimeout(deadline);
      resolve();
    };
    server.close(() => finish());
    server.closeIdleConnections();
    const sweep = setInterval(() => server.closeIdleConnections(), 50);
    const deadline = setTimeout(() => {
      server.closeAllConnections();
      finish();
    }, timeoutMs);
  });
}
