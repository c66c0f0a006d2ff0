/**
 * The admission webhook server: HTTPS with HTTP/2 (kube-apiserver speaks h2 when offered)
 * and HTTP/1.1 fallback. `/mutate`, `/healthz`, `/readyz`, `/metrics` (a bearer token allowed
 * to get metrics.nemutator.io, metrics-guard.ts). The TLS context can be
 * swapped without a restart when the certificate is renewed.
 *
 * The port has no client authentication, so the work one review can cause is bounded before
 * the review is decoded: its size (maxReviewBytes), its nesting depth (maxReviewDepth, a byte
 * pre-scan) and how many reviews and bytes are in flight (review-gate.ts; beyond them 429 at
 * once). Connections are bounded too: idle sessions and slow requests are closed, the number
 * of connections is capped, and request heads over maxHeaderBytes are refused.
 */
import {
  constants as h2,
  createSecureServer,
  type Http2SecureServer,
  type Http2ServerRequest,
  type Http2ServerResponse,
  type ServerHttp2Session,
} from 'node:http2';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { Counter, Gauge, type Registry } from 'prom-client';

import { ErrorCodes, NemuError } from '#common/errors.js';
import type { Logger } from '#common/log.js';

import type { AdmissionHandler } from '../admission/handler.ts';
import { closeWithSweep, type ConnectionLimits, DEFAULT_CONNECTION_LIMITS } from './connections.ts';
import { readBody, send } from './http.ts';
import { assertNesting } from './json-depth.ts';
import type { MetricsGuard } from './metrics-guard.ts';
import { ReviewGate } from './review-gate.ts';
import { errorBody, logUnexpected } from './router.ts';

export interface WebhookServerOptions {
  cert: string;
  key: string;
  handler: AdmissionHandler;
  registry: Registry;
  log: Logger;
  /** Ready when every dependency the controller needs to serve is ready. */
  ready: () => boolean;
  /** Who may read /metrics (metrics-guard.ts); /healthz and /readyz stay open for probes. */
  metricsGuard: MetricsGuard;
  maxBodyBytes?: number;
  /** Deepest nesting of a review (default 128). */
  maxDepth?: number;
  /** Reviews worked on at once (default 64). */
  maxInFlight?: number;
  /** Bytes of large reviews worked on at once (default 8 MiB). */
  maxBytesInFlight?: number;
  connections?: Partial<ConnectionLimits>;
}

export interface WebhookServer {
  server: Http2SecureServer;
  /** Reviews being worked on now. */
  readonly reviewsInFlight: number;
  /** Hot swap of the serving certificate (renewal, reloaded mount). */
  setCertificate(cert: string, key: string): void;
  /**
   * Stops listening; HTTP/2 sessions get a GOAWAY and HTTP/1.1 connections are closed as they
   * turn idle, so reviews in flight are answered. What is still open after `timeoutMs`
   * (default 0: at once) is cut.
   */
  close(timeoutMs?: number): Promise<void>;
}

export function createWebhookServer(opts: WebhookServerOptions): WebhookServer {
  const conn: ConnectionLimits = { ...DEFAULT_CONNECTION_LIMITS, ...opts.connections };
  const gate = new ReviewGate({ maxInFlight: opts.maxInFlight ?? 64, maxBytesInFlight: opts.maxBytesInFlight ?? 8 * 1024 * 1024 });
  const mutate = reviewEndpoint(opts, gate);
  const server = createSecureServer(
    {
      cert: opts.cert,
      key: opts.key,
      allowHTTP1: true,
      minVersion: 'TLSv1.2',
      handshakeTimeout: conn.headersTimeoutMs,
      // Advertised to HTTP/2 clients (Go's client, the apiserver's, will not send more); the
      // handler answers 431 to those that do. HTTP/1.1 answers 431 in Node's parser.
      settings: { maxHeaderListSize: conn.maxHeaderBytes },
    },
    (req, res) => {
      if (req.httpVersionMajor >= 2 && headerListSize(req.rawHeaders) > conn.maxHeaderBytes) {
        const e = new NemuError(ErrorCodes.HEADERS_TOO_LARGE, `the request's headers exceed ${conn.maxHeaderBytes} bytes (maxHeaderBytes)`, { status: 431 });
        send(res, errorBody(e));
        return;
      }
      // A stalled request (body never finished) gives its stream or connection back.
      req.setTimeout(conn.requestTimeoutMs, () => {
        if (req.httpVersionMajor >= 2) req.stream.close(h2.NGHTTP2_CANCEL);
        else req.socket.destroy();
      });
      if (req.httpVersionMajor < 2) connections.trackHttp1(req.socket, res);
      void route(req, res, opts, mutate);
    },
  );
  // The HTTP/1.1 fallback's parser reads its head limit from the server object (431 beyond it).
  Object.assign(server, { maxHeaderSize: conn.maxHeaderBytes });
  server.maxConnections = conn.maxConnections;
  const connections = new WebhookConnections(server, conn, opts.log);
  return {
    server,
    get reviewsInFlight() {
      return gate.reviewsInFlight;
    },
    setCertificate(cert, key) {
      server.setSecureContext({ cert, key });
      opts.log.info('webhook serving certificate replaced');
    },
    close: (timeoutMs = 0) => connections.close(timeoutMs),
  };
}

type Endpoint = (req: Http2ServerRequest, res: Http2ServerResponse) => Promise<void>;

/** Answers one request; a failure becomes its error body, sent once the request body is in. */
async function route(req: Http2ServerRequest, res: Http2ServerResponse, opts: WebhookServerOptions, mutate: Endpoint): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  try {
    if (path === '/healthz') return send(res, { body: { status: 'ok' } });
    if (path === '/readyz') return send(res, opts.ready() ? { body: { status: 'ready' } } : { status: 503, body: { status: 'not ready' } });
    if (path === '/metrics') {
      await opts.metricsGuard(req.headers.authorization, req.socket.remoteAddress ?? '');
      return send(res, { content: await opts.registry.metrics(), contentType: opts.registry.contentType });
    }
    if (path === '/mutate') return await mutate(req, res);
    throw new NemuError(ErrorCodes.NOT_FOUND, `no such endpoint: ${path}; the webhook serves /mutate, /healthz, /readyz and /metrics`, { status: 404 });
  } catch (e) {
    logUnexpected(opts.log, e, `webhook ${path} failed`);
    const { status, body } = errorBody(e);
    // A refusal is sent once the body is in (and thrown away as it comes): an HTTP/2
    // stream answered early is reset, the client's DATA still in flight counts as
    // invalid frames, and enough of those make Node end the whole session, with the
    // other reviews on it. requestTimeout bounds the wait.
    if (!req.complete) await discardBody(req);
    if (!res.headersSent && !res.stream?.destroyed) send(res, { status, body });
  }
}

/**
 * `/mutate`: a review is admitted by the gate, read within its size, checked for depth, and only
 * then decoded and answered. Refusals before decoding are counted by reason.
 */
function reviewEndpoint(opts: WebhookServerOptions, gate: ReviewGate): Endpoint {
  const limit = opts.maxBodyBytes ?? 3 * 1024 * 1024;
  const maxDepth = opts.maxDepth ?? 128;
  const shed = new Counter({
    name: 'nemutator_webhook_refused_total',
    help: 'Reviews refused before decoding, by reason: busy (429, maxReviewsInFlight or maxReviewBytesInFlight), too_deep (400, maxReviewDepth), too_large (413, maxReviewBytes).',
    labelNames: ['reason'],
    registers: [opts.registry],
  });
  new Gauge({
    name: 'nemutator_webhook_reviews_in_flight',
    help: 'Reviews the webhook is working on.',
    registers: [opts.registry],
    collect() {
      this.set(gate.reviewsInFlight);
    },
  });
  const busy = (why: string) =>
    new NemuError(ErrorCodes.WEBHOOK_BUSY, `the webhook is at its limit of ${why}; this review was not read (kube-apiserver applies the failurePolicy)`, {
      status: 429,
    });
  return async (req, res) => {
    if (req.method !== 'POST') throw new NemuError(ErrorCodes.BAD_REQUEST, `${req.method} is not allowed on /mutate; POST an AdmissionReview`, { status: 405 });
    const ticket = gate.enter(Number(req.headers['content-length']));
    if (!ticket) {
      shed.inc({ reason: 'busy' });
      throw busy(
        gate.reviewsInFlight >= (opts.maxInFlight ?? 64)
          ? `${gate.reviewsInFlight} reviews in flight (maxReviewsInFlight)`
          : 'bytes of large reviews in flight (maxReviewBytesInFlight)',
      );
    }
    try {
      let body: Buffer;
      try {
        body = await readBody(req, limit, (n) => (ticket.grow(n) ? undefined : busy('bytes of large reviews in flight (maxReviewBytesInFlight)')));
      } catch (e) {
        const reason = REFUSAL_REASONS[(e as NemuError).code];
        if (reason) shed.inc({ reason });
        throw e;
      }
      try {
        assertNesting(body, maxDepth, 'the AdmissionReview');
      } catch (e) {
        shed.inc({ reason: 'too_deep' });
        throw e;
      }
      send(res, { body: await opts.handler.review(body) });
    } finally {
      ticket.release();
    }
  };
}

/**
 * What a failed body read counts as in nemutator_webhook_refused_total. A body the client
 * broke off is not a refusal: it used to be counted as too_large.
 */
const REFUSAL_REASONS: Record<string, string> = { [ErrorCodes.WEBHOOK_BUSY]: 'busy', [ErrorCodes.PAYLOAD_TOO_LARGE]: 'too_large' };

/**
 * The webhook's open connections. kube-apiserver keeps HTTP/2 sessions open: idle ones are sent
 * a GOAWAY. The HTTP/1.1 fallback of an HTTP/2 server has no headersTimeout or keepAliveTimeout
 * of its own, so its sockets get deadlines here. close() lets answers in flight finish.
 */
class WebhookConnections {
  private closing = false;
  private readonly sessions = new Set<ServerHttp2Session>();
  private readonly sockets = new Set<TLSSocket>();
  /** HTTP/1.1 sockets with a request being answered: close() waits for them. */
  private readonly busySockets = new Set<Socket>();
  private readonly requestDeadlines = new WeakMap<Socket, NodeJS.Timeout>();

  constructor(
    private readonly server: Http2SecureServer,
    private readonly conn: ConnectionLimits,
    log: Logger,
  ) {
    server.on('session', (session) => this.onSession(session, log));
    server.on('secureConnection', (socket: TLSSocket) => this.onConnection(socket));
    server.on('sessionError', (e) => log.debug({ err: e }, 'webhook http2 session error'));
    server.on('tlsClientError', (e) => log.debug({ err: e }, 'webhook TLS client error'));
  }

  /** An HTTP/1.1 request is being answered: no deadline until it is, then the idle one. */
  trackHttp1(socket: Socket, res: Http2ServerResponse): void {
    clearTimeout(this.requestDeadlines.get(socket));
    this.busySockets.add(socket);
    const idle = () => {
      if (!this.busySockets.delete(socket)) return;
      if (this.closing) socket.end();
      else this.awaitRequest(socket, this.conn.idleTimeoutMs);
    };
    res.once('finish', idle);
    res.once('close', idle);
  }

  async close(timeoutMs: number): Promise<void> {
    this.closing = true;
    for (const s of this.sessions) s.close();
    const destroyAll = () => {
      for (const s of this.sockets) s.destroy();
    };
    await closeWithSweep(
      this.server,
      () => {
        for (const s of this.sockets) if (!this.busySockets.has(s) && !isHttp2(s)) s.end();
      },
      destroyAll,
      timeoutMs,
    );
    destroyAll();
  }

  private onSession(session: ServerHttp2Session, log: Logger): void {
    this.sessions.add(session);
    // Idle: a GOAWAY; idle again after it (a stream that never completes): cut.
    session.setTimeout(this.conn.idleTimeoutMs, () => (session.closed ? session.destroy() : session.close()));
    // A client that half-closes sends nothing more: answer what is in flight, then close.
    session.socket?.once('end', () => session.close());
    session.once('close', () => this.sessions.delete(session));
    session.on('error', (e) => log.debug({ err: e }, 'webhook http2 session error'));
  }

  private onConnection(socket: TLSSocket): void {
    this.sockets.add(socket);
    // One listener per connection (not per request: a kept-alive socket answers thousands).
    socket.once('close', () => {
      this.sockets.delete(socket);
      clearTimeout(this.requestDeadlines.get(socket));
    });
    if (isHttp2(socket)) return; // the session timeout covers it
    // Deadlines, not inactivity timers (a client dripping a header a second keeps a socket
    // active): the first request's headers within headersTimeout, the next one's within
    // idleTimeout of the last answer, the request itself within requestTimeout.
    this.awaitRequest(socket, this.conn.headersTimeoutMs);
  }

  private awaitRequest(socket: Socket, ms: number): void {
    clearTimeout(this.requestDeadlines.get(socket));
    const timer = setTimeout(() => socket.destroy(), ms);
    timer.unref();
    this.requestDeadlines.set(socket, timer);
  }
}

/** Reads the rest of a request body without keeping it; resolves when it has ended (or the stream is gone). */
function discardBody(req: Http2ServerRequest): Promise<void> {
  return new Promise((resolve) => {
    req.once('end', resolve);
    req.once('close', resolve);
    req.once('error', () => resolve());
    req.resume();
  });
}

/** The size of a header list as HTTP/2 counts it (RFC 9113 §6.5.2: name + value + 32 per field). */
function headerListSize(raw: string[]): number {
  let size = 0;
  for (const h of raw) size += Buffer.byteLength(h);
  return size + (raw.length / 2) * 32;
}

function isHttp2(socket: TLSSocket): boolean {
  return socket.alpnProtocol === 'h2';
}
