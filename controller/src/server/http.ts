/**
 * Node HTTP plumbing shared by the API server and the webhook server: bounded body reading
 * and answering with JSON or raw content.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import { Readable } from 'node:stream';

import { ErrorCodes, NemuError } from '#common/errors.js';

import { assertNesting } from './json-depth.ts';
import type { ApiResponse } from './router.ts';

export type AnyRequest = IncomingMessage | Http2ServerRequest;
export type AnyResponse = ServerResponse | Http2ServerResponse;

/**
 * Reads a request body, refusing more than `limit` bytes (the rest is discarded, not kept).
 * `onChunk` may refuse the body part way (it returns the error to answer with).
 */
export function readBody(req: AnyRequest, limit: number, onChunk?: (bytes: number) => NemuError | undefined): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) {
      reject(new NemuError(ErrorCodes.PAYLOAD_TOO_LARGE, `request body of ${declared} bytes exceeds the limit of ${limit} bytes`, { status: 413 }));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    req.on('data', (chunk: Buffer) => {
      if (done) return;
      size += chunk.length;
      if (size > limit) {
        done = true;
        reject(new NemuError(ErrorCodes.PAYLOAD_TOO_LARGE, `request body exceeds the limit of ${limit} bytes`, { status: 413 }));
        req.resume();
        return;
      }
      const refused = onChunk?.(chunk.length);
      if (refused) {
        done = true;
        reject(refused);
        req.resume();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (!done) {
        done = true;
        resolve(Buffer.concat(chunks));
      }
    });
    req.on('error', (e: Error) => {
      if (!done) {
        done = true;
        reject(new NemuError(ErrorCodes.BAD_REQUEST, `request body could not be read: ${e.message}`, { status: 400 }));
      }
    });
  });
}

/** Decodes a JSON body; one nested deeper than `maxDepth` is refused before decoding (see json-depth.ts). */
export function parseJson<T>(body: Buffer, maxDepth = 128): T {
  if (body.length === 0) throw new NemuError(ErrorCodes.BAD_REQUEST, 'request body is empty; send a JSON document', { status: 400 });
  assertNesting(body, maxDepth, 'the request body');
  try {
    return JSON.parse(body.toString('utf8')) as T;
  } catch (e) {
    throw new NemuError(ErrorCodes.BAD_REQUEST, `request body is not JSON: ${(e as Error).message}`, { status: 400 });
  }
}

export function send(res: AnyResponse, r: ApiResponse): void {
  const status = r.status ?? 200;
  const headers: Record<string, string> = { ...(r.headers ?? {}) };
  if (r.content !== undefined) {
    headers['content-type'] ??= r.contentType ?? 'application/octet-stream';
    if (r.content instanceof Readable) {
      (res as ServerResponse).writeHead(status, headers);
      r.content.pipe(res as ServerResponse);
      return;
    }
    (res as ServerResponse).writeHead(status, headers);
    res.end(r.content);
    return;
  }
  if (r.body === undefined && status === 204) {
    (res as ServerResponse).writeHead(status, headers);
    res.end();
    return;
  }
  const text = JSON.stringify(r.body ?? null);
  headers['content-type'] = 'application/json';
  (res as ServerResponse).writeHead(status, headers);
  res.end(text);
}
