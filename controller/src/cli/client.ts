/** A small client for the controller's REST API, used by the CLI. */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { ErrorCodes, NemuError } from '#common/errors.js';

import type { CliConfig } from './config.ts';
import { send } from './transport.ts';

export class ApiClient {
  constructor(
    readonly base: string,
    private readonly token: string,
    private readonly ca?: string,
  ) {}

  static fromConfig(config: CliConfig): ApiClient {
    const server = new URL(config.server);
    const loopback = ['localhost', '127.0.0.1', '[::1]'].includes(server.hostname) || server.hostname.startsWith('127.');
    if (server.protocol === 'http:' && !loopback) {
      throw new NemuError(
        ErrorCodes.CONFIG,
        `--server ${config.server} is plain http to another machine: the bearer token would cross the network in clear; use https:// (the REST API speaks TLS outside local mode)`,
      );
    }
    let token = config.token;
    // The local admin token goes to this machine's controller only.
    const file = join(config.stateDir, 'admin-token');
    if (!token && loopback && existsSync(file)) token = readFileSync(file, 'utf8').trim();
    const localCa = join(config.stateDir, 'tls', 'ca.crt');
    let ca: string | undefined;
    if (config.caFile) {
      try {
        ca = readFileSync(config.caFile, 'utf8');
      } catch (e) {
        throw new NemuError(ErrorCodes.CONFIG, `cannot read --ca-file ${config.caFile}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
    } else if (existsSync(localCa)) ca = readFileSync(localCa, 'utf8');
    return new ApiClient(config.server.replace(/\/+$/, ''), token, ca);
  }

  /** Sends the request; a 429 is waited out (Retry-After, up to 10 s, three times) before it is an error. */
  async request(method: string, path: string, body?: unknown): Promise<Response> {
    for (let attempt = 0; ; attempt++) {
      const res = await this.once(method, path, body);
      const wait = Number(res.headers.get('retry-after'));
      if (res.status !== 429 || attempt >= 3 || !(wait > 0 && wait <= 10)) return this.check(res);
      await new Promise((r) => setTimeout(r, wait * 1000));
    }
  }

  private async once(method: string, path: string, body?: unknown): Promise<Response> {
    const headers: Record<string, string> = {};
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await send(this.base + path, { method, headers, body: body === undefined ? null : JSON.stringify(body), ...(this.ca ? { ca: this.ca } : {}) });
    } catch (e) {
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      const why = cause?.code ?? cause?.message ?? (e as Error).message;
      if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ALTNAME/.test(why)) {
        throw new NemuError(
          ErrorCodes.TLS,
          `the controller at ${this.base} presented a certificate this CLI does not trust (${why}); pass --ca-file with the controller's CA (docs/security.md)`,
        );
      }
      throw new NemuError(ErrorCodes.BAD_REQUEST, `cannot reach the controller at ${this.base} (${why}); is it running (npm start) and is --server right?`);
    }
    return res;
  }

  private async check(res: Response): Promise<Response> {
    if (!res.ok) {
      let code: string = ErrorCodes.INTERNAL;
      let message = `${res.status} ${res.statusText}`;
      try {
        const err = (await res.json()) as { code?: string; message?: string };
        code = err.code ?? code;
        message = err.message ?? message;
      } catch {
        // not JSON: keep the status line
      }
      throw new NemuError(code, message, { status: res.status });
    }
    return res;
  }

  async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.request(method, path, body);
    if (res.status === 204) return undefined as T;
    return (await res.json()) as T;
  }
}
