/**
 * The extender's own HTTPS listener: `POST <prefix>filter` and `POST <prefix>prioritize`.
 * kube-scheduler's extender client can present only a TLS client certificate (its
 * `tlsConfig` has certFile/keyFile/caFile and no token), so callers are authenticated by
 * mutual TLS: a certificate signed by the client CA, whose common name (or a DNS name) is
 * one of the allowed names. Nothing else gets past the handshake or the name check.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { Histogram, type Registry } from 'prom-client';

import { ErrorCodes, isNemuError, NemuError } from '#common/errors.js';
import type { Logger } from '#common/log.js';

import { applyHttp1Limits, type ConnectionLimits, serverOptions } from '../server/connections.ts';
import { parseJson, readBody, send } from '../server/http.ts';
import type { SchedulerExtender } from './extender.ts';
import { readExtenderArgs } from './extender-wire.ts';

/** Where the verbs live: `urlPrefix` in KubeSchedulerConfiguration is https://<host>:<schedulerPort>/scheduler/v1. */
export const EXTENDER_PREFIX = '/scheduler/v1/';

export interface ExtenderServerOptions {
  extender: SchedulerExtender;
  cert: string;
  key: string;
  /** CA (PEM) of the client certificates accepted; asked again when the serving certificate is swapped (the CA may have changed with it). */
  clientCa: () => string;
  /** Common names or DNS SANs accepted; '*' accepts any certificate the CA signed. */
  clientNames: string[];
  maxBodyBytes: number;
  maxDepth: number;
  connections: ConnectionLimits;
  registry: Registry;
  log: Logger;
}

export interface ExtenderServer {
  server: HttpsServer;
  setCertificate(certPem: string, keyPem: string): void;
}

/** Whether the peer certificate names an allowed client. */
export function allowedClient(socket: TLSSocket, names: string[]): boolean {
  if (!socket.authorized) return false;
  if (names.includes('*')) return true;
  const cert = socket.getPeerCertificate();
  const cn = cert.subject?.CN;
  const cns = Array.isArray(cn) ? cn : cn ? [cn] : [];
  const sans = (cert.subjectaltname ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.startsWith('DNS:'))
    .map((s) => s.slice(4));
  return [...cns, ...sans].some((n) => names.includes(n));
}

function fail(res: ServerResponse, e: unknown, log: Logger): number {
  const err = isNemuError(e) ? e : new NemuError(ErrorCodes.INTERNAL, `the extender failed: ${(e as Error).message}`);
  if (err.status >= 500) log.error({ err: (e as Error).message }, 'extender request failed');
  send(res, { status: err.status, body: err.toJSON() });
  return err.status;
}

async function handle(req: IncomingMessage, res: ServerResponse, o: ExtenderServerOptions): Promise<{ verb: string; status: number }> {
  const path = (req.url ?? '').split('?')[0] ?? '';
  const verb = path.startsWith(EXTENDER_PREFIX) ? path.slice(EXTENDER_PREFIX.length) : '';
  const known = verb === 'filter' || verb === 'prioritize';
  try {
    if (!allowedClient(req.socket as TLSSocket, o.clientNames))
      throw new NemuError(ErrorCodes.FORBIDDEN, `this client certificate is not one of the allowed scheduler clients (schedulerClientNames)`, { status: 403 });
    if (!known)
      throw new NemuError(ErrorCodes.NOT_FOUND, `no extender verb at ${path}; the verbs are ${EXTENDER_PREFIX}filter and ${EXTENDER_PREFIX}prioritize`, {
        status: 404,
      });
    if (req.method !== 'POST') throw new NemuError(ErrorCodes.BAD_REQUEST, `${verb} takes POST with an ExtenderArgs body`, { status: 405 });
    const body = parseJson<unknown>(await readBody(req, o.maxBodyBytes), o.maxDepth);
    const { pod, candidates } = readExtenderArgs(body);
    const answer = verb === 'prioritize' ? o.extender.prioritize(pod, candidates) : o.extender.filter(pod, candidates);
    send(res, { status: 200, body: answer });
    return { verb, status: 200 };
  } catch (e) {
    return { verb: known ? verb : 'unknown', status: fail(res, e, o.log) };
  }
}

export function createExtenderServer(o: ExtenderServerOptions): ExtenderServer {
  const tlsOptions = (cert: string, key: string) => ({
    cert,
    key,
    ca: o.clientCa(),
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.2' as const,
  });
  const server = createHttpsServer({ ...tlsOptions(o.cert, o.key), ...serverOptions(o.connections) });
  applyHttp1Limits(server, o.connections);
  const duration = new Histogram({
    name: 'nemutator_scheduler_extender_request_seconds',
    help: 'Time to answer a kube-scheduler extender call, by verb and HTTP status.',
    labelNames: ['verb', 'status'],
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [o.registry],
  });
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const started = process.hrtime.bigint();
    void handle(req, res, o).then(({ verb, status }) => duration.observe({ verb, status: String(status) }, Number(process.hrtime.bigint() - started) / 1e9));
  });
  return {
    server,
    setCertificate: (cert, key) => server.setSecureContext(tlsOptions(cert, key)),
  };
}
