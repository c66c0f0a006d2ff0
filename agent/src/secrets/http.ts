/** The secrets socket's HTTP plumbing: JSON error answers and bounded JSON bodies. */
import type http from 'node:http';

import { isNemuError } from '#common/errors.js';
import type { Logger } from '#common/log.js';

import { secretsError } from './errors.ts';

/** An error as `{code, message}` with its status; anything not a NemuError is logged and answered as INTERNAL. */
export function sendError(res: http.ServerResponse, err: unknown, log: Logger): void {
  const e = isNemuError(err) ? err : secretsError('INTERNAL', 'the agent failed to answer; see its log');
  if (!isNemuError(err)) log.error({ err: { message: (err as Error).message, stack: (err as Error).stack } }, 'secrets socket request failed');
  if (res.headersSent) return void res.destroy();
  const body = JSON.stringify(e.toJSON());
  res.writeHead(e.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
}

/** An answer written straight to the socket, for requests the HTTP parser refused. */
export function rawErrorAnswer(status: number, reason: string, body: string): string {
  return `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`;
}

/** The JSON body, refused as TOO_LARGE past `maxBytes` (declared or sent) and BAD_REQUEST when not JSON. */
export function readJsonBody(req: http.IncomingMessage, maxBytes: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > maxBytes) return reject(secretsError('TOO_LARGE', `request bodies are limited to ${maxBytes} bytes`));
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > maxBytes) {
        reject(secretsError('TOO_LARGE', `request bodies are limited to ${maxBytes} bytes`));
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
}
