/**
 * The agent's own small Kubernetes API client: GET and watch over HTTPS with the
 * credentials of a kubeconfig file or of the pod (in-cluster), and POST for the reviews that
 * guard the agent's /metrics. The agent needs only the pods of its node, the API server's
 * JWKS and those reviews; @kubernetes/client-node would cost every node
 * ~60 MiB of memory for that.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { createRequire } from 'node:module';
import { join } from 'node:path';

import { ErrorCodes, NemuError } from '#common/errors.js';

// yaml is loaded only when a file is read (~4 MiB the agent on every node need not carry).
function parseYaml(text: string): unknown {
  return (createRequire(import.meta.url)('yaml') as typeof import('yaml')).parse(text);
}

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface KubeCredentials {
  server: string;
  ca?: string;
  insecure?: boolean;
  /** Re-read per request: projected tokens rotate. */
  token?: () => string;
  cert?: string;
  key?: string;
}

interface NamedEntry<T> {
  name: string;
  [k: string]: unknown;
  cluster?: T;
  user?: T;
  context?: T;
}

function readMaybe(path: string | undefined, base: string): string | undefined {
  if (!path) return undefined;
  return readFileSync(path.startsWith('/') ? path : join(base, path), 'utf8');
}

function fromBase64(data: unknown): string | undefined {
  return typeof data === 'string' && data ? Buffer.from(data, 'base64').toString('utf8') : undefined;
}

/** Credentials of a kubeconfig's current context (token, token file or client certificate). */
export function credentialsFromKubeconfig(path: string): KubeCredentials {
  let doc: Record<string, unknown>;
  try {
    doc = parseYaml(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new NemuError(ErrorCodes.CONFIG, `cannot read the kubeconfig ${path}: ${(e as Error).message}; check --kubeconfig`);
  }
  const base = path.replace(/\/[^/]*$/, '') || '.';
  const find = <T>(list: unknown, name: unknown): T | undefined =>
    (Array.isArray(list) ? (list as Array<NamedEntry<T>>).find((e) => e.name === name) : undefined) as T | undefined;
  const ctx = find<NamedEntry<Record<string, string>>>(doc.contexts, doc['current-context'])?.context;
  if (!ctx) throw new NemuError(ErrorCodes.CONFIG, `the kubeconfig ${path} has no current context; set current-context`);
  const cluster = find<NamedEntry<Record<string, unknown>>>(doc.clusters, ctx.cluster)?.cluster;
  const user = find<NamedEntry<Record<string, unknown>>>(doc.users, ctx.user)?.user ?? {};
  if (!cluster || typeof cluster.server !== 'string')
    throw new NemuError(ErrorCodes.CONFIG, `the kubeconfig ${path} has no server for context ${doc['current-context']}`);
  const token = typeof user.token === 'string' ? user.token : undefined;
  const tokenFile = typeof user.tokenFile === 'string' ? user.tokenFile : undefined;
  const ca = fromBase64(cluster['certificate-authority-data']) ?? readMaybe(cluster['certificate-authority'] as string | undefined, base);
  const cert = fromBase64(user['client-certificate-data']) ?? readMaybe(user['client-certificate'] as string | undefined, base);
  const key = fromBase64(user['client-key-data']) ?? readMaybe(user['client-key'] as string | undefined, base);
  return {
    server: cluster.server.replace(/\/+$/, ''),
    ...(ca ? { ca } : {}),
    ...(cluster['insecure-skip-tls-verify'] === true ? { insecure: true } : {}),
    ...(token ? { token: () => token } : tokenFile ? { token: () => readFileSync(tokenFile, 'utf8').trim() } : {}),
    ...(cert && key ? { cert, key } : {}),
  };
}

/** The pod's own service account, as every in-cluster client uses it. */
export function inClusterCredentials(): KubeCredentials {
  const host = process.env.KUBERNETES_SERVICE_HOST;
  const port = process.env.KUBERNETES_SERVICE_PORT ?? '443';
  if (!host) throw new NemuError(ErrorCodes.CONFIG, 'not running in a pod (KUBERNETES_SERVICE_HOST is unset) and --kubeconfig is empty');
  return {
    server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
    ca: readFileSync(join(SA_DIR, 'ca.crt'), 'utf8'),
    token: () => readFileSync(join(SA_DIR, 'token'), 'utf8').trim(),
  };
}

export class KubeApi {
  private readonly agent: http.Agent;

  constructor(readonly credentials: KubeCredentials) {
    const tls = credentials.server.startsWith('https:');
    this.agent = tls
      ? new https.Agent({
          keepAlive: true,
          ...(credentials.ca ? { ca: credentials.ca } : {}),
          ...(credentials.cert ? { cert: credentials.cert, key: credentials.key } : {}),
          rejectUnauthorized: !credentials.insecure,
        })
      : new http.Agent({ keepAlive: true });
  }

  /** A kubeconfig file when given, else in-cluster credentials, else no cluster (undefined). */
  static load(kubeconfig: string): KubeApi | undefined {
    if (kubeconfig) return new KubeApi(credentialsFromKubeconfig(kubeconfig));
    if (process.env.KUBERNETES_SERVICE_HOST) return new KubeApi(inClusterCredentials());
    return undefined;
  }

  get server(): string {
    return this.credentials.server;
  }

  /** Request options for `url` with this API server's TLS and credentials (JWKS, say). */
  options(url: URL, method = 'GET'): https.RequestOptions {
    const token = this.credentials.token?.();
    return {
      method,
      hostname: url.hostname.replace(/^\[|\]$/g, ''),
      port: url.port,
      path: url.pathname + url.search,
      agent: this.agent,
      headers: { accept: 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    };
  }

  /** Opens `path` (sending `body` as JSON with a POST) and hands over the response once the status line is in. */
  open(path: string, signal?: AbortSignal, timeoutMs = 30_000, body?: unknown): Promise<http.IncomingMessage> {
    const url = new URL(path, this.credentials.server);
    const mod = url.protocol === 'https:' ? https : http;
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const options = this.options(url, payload ? 'POST' : 'GET');
    if (payload) options.headers = { ...options.headers, 'content-type': 'application/json', 'content-length': payload.length };
    return new Promise((resolve, reject) => {
      const req = mod.request({ ...options, ...(signal ? { signal } : {}), timeout: timeoutMs }, resolve);
      req.on('timeout', () => req.destroy(new Error(`${url.pathname} timed out after ${timeoutMs} ms`)));
      req.on('error', (e) =>
        reject(
          new NemuError(ErrorCodes.INTERNAL, `the API server at ${this.credentials.server} did not answer ${url.pathname}: ${e.message}`, {
            status: 503,
            cause: e,
          }),
        ),
      );
      req.end(payload);
    });
  }

  /** GET a JSON document; a non-2xx answer becomes a NemuError carrying the API's status. */
  async json<T>(path: string, signal?: AbortSignal): Promise<T> {
    const res = await this.open(path, signal);
    const body = await readAll(res);
    if ((res.statusCode ?? 0) >= 300) throw apiError(path, res.statusCode ?? 0, body);
    return JSON.parse(body) as T;
  }

  /** POSTs a JSON document (a review: answered, never stored) and reads the answer; a non-2xx answer becomes a NemuError. */
  async create<T>(path: string, body: unknown, timeoutMs = 10_000): Promise<T> {
    const res = await this.open(path, undefined, timeoutMs, body);
    const text = await readAll(res);
    if ((res.statusCode ?? 0) >= 300) throw apiError(path, res.statusCode ?? 0, text);
    return JSON.parse(text) as T;
  }

  /**
   * Watches `path` (a `watch=1` URL): one decoded event per line, until the server ends the
   * stream (resolves) or the connection fails (rejects). A non-2xx start rejects with the status.
   */
  async watch(path: string, onEvent: (event: { type: string; object: Record<string, unknown> }) => void, signal?: AbortSignal): Promise<void> {
    const res = await this.open(path, signal, 0);
    if ((res.statusCode ?? 0) >= 300) throw apiError(path, res.statusCode ?? 0, await readAll(res));
    let rest = '';
    await new Promise<void>((resolve, reject) => {
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        rest += chunk;
        let nl: number;
        while ((nl = rest.indexOf('\n')) >= 0) {
          const line = rest.slice(0, nl).trim();
          rest = rest.slice(nl + 1);
          if (!line) continue;
          try {
            onEvent(JSON.parse(line) as { type: string; object: Record<string, unknown> });
          } catch (e) {
            res.destroy(e as Error);
            return;
          }
        }
      });
      res.on('end', () => resolve());
      res.on('error', reject);
      res.on('aborted', () => reject(new Error('watch connection aborted')));
      res.socket?.on('close', () => resolve());
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

function readAll(res: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    res.on('error', reject);
  });
}

function apiError(path: string, status: number, body: string): NemuError {
  let message = body.slice(0, 300);
  try {
    message = (JSON.parse(body) as { message?: string }).message ?? message;
  } catch {
    // not a Status object
  }
  const code = status === 401 ? ErrorCodes.UNAUTHORIZED : status === 403 ? ErrorCodes.FORBIDDEN : status === 404 ? ErrorCodes.NOT_FOUND : ErrorCodes.INTERNAL;
  return new NemuError(code, `the API server refused ${path} (${status}): ${message}`, { status });
}
