/**
 * A unary-only gRPC server over HTTP/2 cleartext on a unix socket (node:http2), enough for the
 * CSI node plugin: kubelet and the node-driver-registrar make unary calls only. It follows the
 * gRPC over HTTP/2 protocol (grpc/grpc, doc/PROTOCOL-HTTP2.md): a POST to /<package>.<Service>/<Method>
 * with content-type application/grpc, one length-prefixed message in, one out, the status in
 * the trailers (or trailers-only for an error). It replaces @grpc/grpc-js's server, whose code
 * and proto-loader's reflection of csi.proto held ~6 MiB of the agent's resident memory
 * (docs/csi.md, "Its gRPC server"). Tests still call it with @grpc/grpc-js's client.
 */
import { constants, createServer, type Http2Server, type Http2Session, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';

/** gRPC status codes (grpc/grpc, doc/statuscodes.md). */
export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;
export type GrpcStatusCode = (typeof GrpcStatus)[keyof typeof GrpcStatus];

/** The error a method handler throws to answer with a status other than OK. */
export class GrpcStatusError extends Error {
  constructor(
    readonly grpcCode: GrpcStatusCode,
    message: string,
  ) {
    super(message);
  }
}

/** A unary method: the request's bytes in, the response's bytes out (or a GrpcStatusError). */
export type UnaryMethod = (request: Uint8Array) => Promise<Uint8Array>;

export interface UnaryServer {
  server: Http2Server;
  /** Lets the calls in flight finish (at most graceMs), then closes every connection. */
  close(graceMs: number): Promise<void>;
}

const PREFIX = 5;

/** grpc-message is percent-encoded: everything outside printable ASCII, and '%' itself. */
function percentEncode(text: string): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8'))
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  return out;
}

function fail(stream: ServerHttp2Stream, code: GrpcStatusCode, message: string): void {
  if (stream.destroyed || stream.headersSent) return;
  stream.respond(
    { ':status': 200, 'content-type': 'application/grpc+proto', 'grpc-status': String(code), 'grpc-message': percentEncode(message) },
    { endStream: true },
  );
}

function reply(stream: ServerHttp2Stream, message: Uint8Array): void {
  if (stream.destroyed || stream.headersSent) return;
  const frame = Buffer.allocUnsafe(PREFIX + message.length);
  frame.writeUInt8(0, 0);
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, PREFIX);
  stream.respond({ ':status': 200, 'content-type': 'application/grpc+proto' }, { waitForTrailers: true });
  stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', 'grpc-message': '' }));
  stream.end(frame);
}

/** The one message of a unary request's body, or a status to answer with. */
function unframe(body: Buffer, headers: IncomingHttpHeaders): Uint8Array | GrpcStatusError {
  if (body.length < PREFIX) return new GrpcStatusError(GrpcStatus.INTERNAL, 'the request has no complete gRPC message');
  const length = body.readUInt32BE(1);
  if (body.length !== PREFIX + length) return new GrpcStatusError(GrpcStatus.INTERNAL, 'a unary request carries exactly one gRPC message');
  const encoding = headers['grpc-encoding'];
  if (body[0] !== 0 && encoding !== undefined && encoding !== 'identity') {
    return new GrpcStatusError(GrpcStatus.UNIMPLEMENTED, `compressed messages (${String(encoding)}) are not supported`);
  }
  return body.subarray(PREFIX);
}

function serveStream(methods: ReadonlyMap<string, UnaryMethod>, maxMessageBytes: number, stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
  stream.on('error', () => undefined); // a client gone mid-call; nothing to answer
  const contentType = String(headers['content-type'] ?? '');
  if (headers[':method'] !== 'POST' || !contentType.startsWith('application/grpc')) {
    stream.respond({ ':status': 415 }, { endStream: true });
    return;
  }
  const method = methods.get(String(headers[':path']));
  if (method === undefined) {
    fail(stream, GrpcStatus.UNIMPLEMENTED, `unknown method ${String(headers[':path'])}`);
    stream.resume();
    return;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  stream.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size > PREFIX + maxMessageBytes) fail(stream, GrpcStatus.RESOURCE_EXHAUSTED, `the request is larger than ${maxMessageBytes} bytes`);
    else chunks.push(chunk);
  });
  stream.on('end', () => {
    if (stream.headersSent) return;
    const message = unframe(Buffer.concat(chunks), headers);
    if (message instanceof GrpcStatusError) return fail(stream, message.grpcCode, message.message);
    method(message).then(
      (response) => reply(stream, response),
      (e: unknown) => (e instanceof GrpcStatusError ? fail(stream, e.grpcCode, e.message) : fail(stream, GrpcStatus.INTERNAL, String(e))),
    );
  });
}

/** Serves `methods` (by path, "/csi.v1.Node/NodePublishVolume") on the server's connections. */
export function unaryServer(methods: ReadonlyMap<string, UnaryMethod>, opts: { maxMessageBytes: number }): UnaryServer {
  const sessions = new Set<Http2Session>();
  const server = createServer({ settings: { maxConcurrentStreams: 64 } });
  server.on('session', (session: Http2Session) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
    session.on('error', () => undefined);
  });
  server.on('stream', (stream, headers) => serveStream(methods, opts.maxMessageBytes, stream, headers));
  return {
    server,
    async close(graceMs) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sessions) s.close();
      const force = setTimeout(() => {
        for (const s of sessions) s.destroy(undefined, constants.NGHTTP2_CANCEL);
      }, graceMs);
      await closed;
      clearTimeout(force);
    },
  };
}
