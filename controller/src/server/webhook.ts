/**
 * The admission webhook server: HTTPS with HTTP/2 (kube-apiserver speaks h2 when offered)
 * and HTTP/1.1 fallback. `/mutate`, `/healthz`, `/readyz`, `/metrics`. The TLS context can be
 * swapped without a restart when the certificate is renewed.
 */
import { createSecureServer, type Http2SecureServer } from 'node:http2';
import type { Registry } from 'prom-client';
import { ErrorCodes, NemuError } from '../../../common/src/errors.ts';
import type { Logger } from '../../../common/src/log.ts';
import type { AdmissionHandler } from '../admission/handler.ts';
import { readBody, send } from './http.ts';
import { errorBody, logUnexpected } from './router.ts';

export interface WebhookServerOptions {
  cert: string;
  key: string;
  handler: AdmissionHandler;
  registry: Registry;
  log: Logger;
  /** Ready when every dependency the controller needs to serve is ready. */
  ready: () => boolean;
  maxBodyBytes?: number;
}

export interface WebhookServer {
  server: Http2SecureServer;
  /** Hot swap of the serving certificate (renewal, reloaded mount). */
  setCertificate(cert: string, key: string): void;
  /** Stops listening and ends open HTTP/2 sessions and HTTP/1.1 connections. */
  close(): Promise<void>;
}

export function createWebhookServer(opts: WebhookServerOptions): WebhookServer {
  const limit = opts.maxBodyBytes ?? 3 * 1024 * 1024;
  const server = createSecureServer({ cert: opts.cert, key: opts.key, allowHTTP1: true, minVersion: 'TLSv1.2' }, (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    void (async () => {
      try {
        if (path === '/healthz') return send(res, { body: { status: 'ok' } });
        if (path === '/readyz') return send(res, opts.ready() ? { body: { status: 'ready' } } : { status: 503, body: { status: 'not ready' } });
        if (path === '/metrics') return send(res, { content: await opts.registry.metrics(), contentType: opts.registry.contentType });
        if (path === '/mutate') {
          if (req.method !== 'POST') throw new NemuError(ErrorCodes.BAD_REQUEST, `${req.method} is not allowed on /mutate; POST an AdmissionReview`, { status: 405 });
          const body = await readBody(req, limit);
          return send(res, { body: await opts.handler.review(body) });
        }
        throw new NemuError(ErrorCodes.NOT_FOUND, `no such endpoint: ${path}; the webhook serves /mutate, /healthz, /readyz and /metrics`, { status: 404 });
      } catch (e) {
        logUnexpected(opts.log, e, `webhook ${path} failed`);
        const { status, body } = errorBody(e);
        if (!res.headersSent) send(res, { status, body });
      }
    })();
  });
  // kube-apiserver keeps HTTP/2 sessions open; close() must end them itself.
  const sessions = new Set<import('node:http2').ServerHttp2Session>();
  const sockets = new Set<import('node:net').Socket>();
  server.on('session', (session) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
  });
  server.on('secureConnection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.on('sessionError', (e) => opts.log.debug({ err: e }, 'webhook http2 session error'));
  server.on('tlsClientError', (e) => opts.log.debug({ err: e }, 'webhook TLS client error'));
  return {
    server,
    setCertificate(cert, key) {
      server.setSecureContext({ cert, key });
      opts.log.info('webhook serving certificate replaced');
    },
    close() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sessions) s.close();
        for (const s of sockets) s.destroy();
      });
    },
  };
}
