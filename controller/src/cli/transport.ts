/**
 * HTTP(S) for the CLI, with the trust it needs: in a cluster the REST API is served with the
 * controller's own CA (or a mounted certificate), which is not in the system store, so the CLI
 * verifies the server against `--ca-file` and never turns verification off. Answers come back
 * as WHATWG `Response`s, like `fetch`.
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

export interface TransportInit {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Buffer | null;
  /** PEM of the CA(s) to trust for https; default the system's. */
  ca?: string | Buffer;
  timeoutMs?: number;
}

export function send(url: string, init: TransportInit = {}): Promise<Response> {
  const u = new URL(url);
  const secure = u.protocol === 'https:';
  const request = secure ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(
      u,
      { method: init.method ?? 'GET', headers: init.headers ?? {}, ...(secure && init.ca ? { ca: init.ca } : {}), timeout: init.timeoutMs ?? 120_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const headers = new Headers();
          for (const [k, v] of Object.entries(res.headers)) {
            if (v === undefined) continue;
            for (const one of Array.isArray(v) ? v : [v]) headers.append(k, one);
          }
          const status = res.statusCode ?? 500;
          const body = status === 204 || status === 304 ? null : Buffer.concat(chunks);
          resolve(new Response(body, { status, statusText: res.statusMessage ?? '', headers }));
        });
      },
    );
    req.on('timeout', () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
    req.on('error', (e) => reject(Object.assign(new Error(e.message), { cause: e })));
    req.end(init.body ?? undefined);
  });
}
