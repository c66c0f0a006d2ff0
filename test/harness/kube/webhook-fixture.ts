// A scriptable admission webhook for tests of the double's admission path: HTTPS with a
// certificate from a test CA (HTTP/1.1, or HTTP/2 with HTTP/1.1 fallback), recording every
// AdmissionReview it receives. The handler returns the exact body to send, so tests can
// also answer the invalid ways a real server must reject.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import http2 from 'node:http2';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Operation } from 'fast-json-patch';

import type { CertificateAuthority } from './tls.ts';

export interface AdmissionRequest {
  uid: string;
  kind: { group: string; version: string; kind: string };
  resource: { group: string; version: string; resource: string };
  subResource?: string;
  name?: string;
  namespace?: string;
  operation: string;
  userInfo: { username: string; uid?: string; groups?: string[]; extra?: Record<string, string[]> };
  object: Record<string, any> | null; // eslint-disable-line @typescript-eslint/no-explicit-any
  oldObject: Record<string, any> | null; // eslint-disable-line @typescript-eslint/no-explicit-any
  dryRun: boolean;
  options: Record<string, unknown> | null;
}

export type WebhookHandler = (request: AdmissionRequest, call: { path: string; httpVersion: string }) => unknown | Promise<unknown>;

export interface TestWebhook {
  url: string;
  port: number;
  /** base64 PEM of the CA, for clientConfig.caBundle. */
  caBundle: string;
  requests: AdmissionRequest[];
  httpVersions: string[];
  handler: WebhookHandler;
  stop(): Promise<void>;
}

/** The usual answer: allowed, with an optional JSONPatch. */
export function allow(request: AdmissionRequest, patch?: Operation[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    response: {
      uid: request.uid,
      allowed: true,
      ...(patch ? { patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(patch)).toString('base64') } : {}),
      ...extra,
    },
  };
}

export function deny(request: AdmissionRequest, message: string, code = 403): Record<string, unknown> {
  return { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: request.uid, allowed: false, status: { message, code } } };
}

export async function startTestWebhook(opts: {
  ca: CertificateAuthority;
  handler: WebhookHandler;
  http2?: boolean;
  dnsNames?: string[];
  path?: string;
}): Promise<TestWebhook> {
  const cert = await opts.ca.issue({ commonName: 'test-webhook', dnsNames: ['localhost', ...(opts.dnsNames ?? [])], ips: ['127.0.0.1'] });
  const webhook = { requests: [] as AdmissionRequest[], httpVersions: [] as string[], handler: opts.handler } as TestWebhook;
  const onRequest = (req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse): void => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        try {
          const review = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { request: AdmissionRequest };
          webhook.requests.push(review.request);
          webhook.httpVersions.push(req.httpVersion);
          const body = await webhook.handler(review.request, { path: req.url ?? '', httpVersion: req.httpVersion });
          if (body === undefined) return; // the handler chose to hang
          const text = JSON.stringify(body);
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(text);
        } catch (err) {
          res.writeHead(500, { 'content-type': 'text/plain' });
          res.end(String(err));
        }
      })();
    });
  };
  const server = opts.http2
    ? http2.createSecureServer({ key: cert.keyPem, cert: cert.certPem, allowHTTP1: true }, onRequest)
    : https.createServer({ key: cert.keyPem, cert: cert.certPem }, onRequest);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const sessions = new Set<{ destroy(): void }>();
  server.on('session', (s: { destroy(): void }) => sessions.add(s));
  server.on('secureConnection', (s: { destroy(): void }) => sessions.add(s));
  Object.assign(webhook, {
    url: `https://127.0.0.1:${port}${opts.path ?? '/mutate'}`,
    port,
    caBundle: Buffer.from(opts.ca.certPem).toString('base64'),
    stop: () =>
      new Promise<void>((resolve) => {
        for (const s of sessions) s.destroy();
        server.close(() => resolve());
      }),
  });
  return webhook;
}
