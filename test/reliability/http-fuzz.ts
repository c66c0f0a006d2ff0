// A seeded generator of hostile HTTP/1.x and HTTP/2 bytes, and a raw client that sends them
// and reports what came back. Deterministic: the same seed gives the same cases, so a failure
// names a case that can be replayed (FUZZ_SEED, FUZZ_CASES).
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';

/** mulberry32: small, fast, good enough to spread cases; never Math.random. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface FuzzCase {
  name: string;
  /** Written one after the other (a request split at odd places). */
  chunks: Buffer[];
}

export interface Target {
  /** Paths this listener serves, so generated requests reach its handlers too. */
  paths: string[];
  /** A valid JSON body for its POST/PUT routes. */
  body: string;
}

/** The absolute-form targets the URL parser rejects (issue 15), and their neighbours. */
export const ABSOLUTE_FORM_TARGETS = [
  'http://[',
  'http://%zz/',
  'https://[::1/',
  'http://x:99999/',
  'http://[::1]:abc/',
  'http://',
  'http:///',
  'http://a:b@[/',
  'http://[::1]:/',
  'https://%/',
  'ftp://x/',
  'http://x:-1/',
  '//x/',
  '*',
  'x',
  '\\\\',
  '/%',
  '/%zz',
  '/%00',
  '/%E0%A4%A',
  '/..%2f..%2fetc/passwd',
  '/?' + '%'.repeat(50),
];

const crlf = '\r\n';
const req = (line: string, headers: string[], body: string | Buffer = '') =>
  Buffer.concat([
    Buffer.from(line + crlf + headers.map((h) => h + crlf).join('') + crlf, 'latin1'),
    Buffer.isBuffer(body) ? body : Buffer.from(body, 'latin1'),
  ]);

/** Hand-picked cases: request-line, header, framing and encoding abuse. */
export function fixedCases(t: Target): FuzzCase[] {
  const p = t.paths[0] ?? '/';
  const post = t.paths.find((x) => x !== '/healthz') ?? p;
  const one = (name: string, b: Buffer | string): FuzzCase => ({ name, chunks: [Buffer.isBuffer(b) ? b : Buffer.from(b, 'latin1')] });
  const cases: FuzzCase[] = [];
  for (const target of ABSOLUTE_FORM_TARGETS) {
    for (const method of ['GET', 'POST', 'OPTIONS'])
      cases.push(one(`${method} ${target}`, req(`${method} ${target} HTTP/1.1`, ['Host: x', 'Content-Length: 0'])));
  }
  const deep = '['.repeat(200_000) + ']'.repeat(200_000);
  cases.push(
    one('empty line', crlf + crlf),
    one('nothing but CRLFs', crlf.repeat(1000)),
    one('method only', 'GET' + crlf + crlf),
    one('HTTP/0.9', `GET ${p}` + crlf),
    one('HTTP/9.9', req(`GET ${p} HTTP/9.9`, ['Host: x'])),
    one('HTTP/1.1 extra token', req(`GET ${p} HTTP/1.1 x`, ['Host: x'])),
    one('lowercase method', req(`get ${p} HTTP/1.1`, ['Host: x'])),
    one('long method', req(`${'A'.repeat(5000)} ${p} HTTP/1.1`, ['Host: x'])),
    one('NUL in method', req(`G\0ET ${p} HTTP/1.1`, ['Host: x'])),
    one('NUL in target', req(`GET ${p}\0 HTTP/1.1`, ['Host: x'])),
    one('64 KiB target', req(`GET /${'a'.repeat(65536)} HTTP/1.1`, ['Host: x'])),
    one('CONNECT', req('CONNECT 127.0.0.1:443 HTTP/1.1', ['Host: 127.0.0.1:443'])),
    one('h2 preface on HTTP/1.1', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'),
    one(
      'h2c upgrade',
      req(`GET ${p} HTTP/1.1`, ['Host: x', 'Connection: Upgrade, HTTP2-Settings', 'Upgrade: h2c', 'HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA']),
    ),
    one(
      'websocket upgrade with a bad key',
      req(`GET ${p} HTTP/1.1`, ['Host: x', 'Connection: Upgrade', 'Upgrade: websocket', 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Key: !!!']),
    ),
    one(
      'websocket upgrade to /fleet, version 99',
      req('GET /fleet HTTP/1.1', [
        'Host: x',
        'Connection: Upgrade',
        'Upgrade: websocket',
        'Sec-WebSocket-Version: 99',
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
      ]),
    ),
    one(
      'websocket upgrade to /fleet, then garbage frames',
      Buffer.concat([
        req('GET /fleet HTTP/1.1', [
          'Host: x',
          'Connection: Upgrade',
          'Upgrade: websocket',
          'Sec-WebSocket-Version: 13',
          'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
        ]),
        Buffer.from([0x82, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00]),
      ]),
    ),
    one('bare LF line endings', `GET ${p} HTTP/1.1\nHost: x\n\n`),
    one('header without colon', req(`GET ${p} HTTP/1.1`, ['Host: x', 'NoColonHere'])),
    one('space before colon', req(`GET ${p} HTTP/1.1`, ['Host : x'])),
    one('obs-fold', req(`GET ${p} HTTP/1.1`, ['Host: x', 'X-A: a', ' folded'])),
    one('20 KiB header', req(`GET ${p} HTTP/1.1`, ['Host: x', `X-Big: ${'a'.repeat(20_000)}`])),
    one('1 MiB of headers', req(`GET ${p} HTTP/1.1`, ['Host: x', ...Array.from({ length: 1024 }, (_, i) => `X-${i}: ${'b'.repeat(1000)}`)])),
    one('5000 small headers', req(`GET ${p} HTTP/1.1`, ['Host: x', ...Array.from({ length: 5000 }, (_, i) => `X${i}: 1`)])),
    one(
      'bytes 0x80-0xff in a header',
      req(`GET ${p} HTTP/1.1`, ['Host: x', 'X-A: ' + Buffer.from(Array.from({ length: 128 }, (_, i) => 0x80 + i)).toString('latin1')]),
    ),
    one('NUL in a header value', req(`GET ${p} HTTP/1.1`, ['Host: x', 'X-A: a\0b'])),
    one('CR in a header value', req(`GET ${p} HTTP/1.1`, ['Host: x', 'X-A: a\rb'])),
    one('no Host', req(`GET ${p} HTTP/1.1`, [])),
    one('two Hosts', req(`GET ${p} HTTP/1.1`, ['Host: a', 'Host: b'])),
    one('bearer of 10 KiB', req(`GET ${p} HTTP/1.1`, ['Host: x', `Authorization: Bearer ${'t'.repeat(10_000)}`])),
    one('bearer with bytes over 0x7f', req(`GET ${p} HTTP/1.1`, ['Host: x', 'Authorization: Bearer \u00ff\u00fe'])),
    one('Basic auth', req(`GET ${p} HTTP/1.1`, ['Host: x', 'Authorization: Basic YTpi'])),
    one('two different Content-Lengths', req(`POST ${post} HTTP/1.1`, ['Host: x', 'Content-Length: 2', 'Content-Length: 3'], '{}x')),
    one('Content-Length and chunked', req(`POST ${post} HTTP/1.1`, ['Host: x', 'Content-Length: 2', 'Transfer-Encoding: chunked'], '2\r\n{}\r\n0\r\n\r\n')),
    one('negative Content-Length', req(`POST ${post} HTTP/1.1`, ['Host: x', 'Content-Length: -1'], '{}')),
    one('non-numeric Content-Length', req(`POST ${post} HTTP/1.1`, ['Host: x', 'Content-Length: abc'], '{}')),
    one('Content-Length 99999999999, short body', req(`POST ${post} HTTP/1.1`, ['Host: x', 'Content-Length: 99999999999'], '{}')),
    one(
      'Content-Length 100, 10 bytes then EOF',
      req(`POST ${post} HTTP/1.1`, ['Host: x', 'Content-Type: application/json', 'Content-Length: 100'], '{"a":12345'),
    ),
    one('chunk size overflow', req(`POST ${post} HTTP/1.1`, ['Host: x', 'Transfer-Encoding: chunked'], 'ffffffffffffffffffff\r\nx\r\n0\r\n\r\n')),
    one('chunk size not hex', req(`POST ${post} HTTP/1.1`, ['Host: x', 'Transfer-Encoding: chunked'], 'zz\r\nx\r\n0\r\n\r\n')),
    one('chunked, never terminated', req(`POST ${post} HTTP/1.1`, ['Host: x', 'Transfer-Encoding: chunked'], '2\r\n{}\r\n')),
    one('Transfer-Encoding gzip, chunked', req(`POST ${post} HTTP/1.1`, ['Host: x', 'Transfer-Encoding: gzip, chunked'], '2\r\n{}\r\n0\r\n\r\n')),
    one('Transfer-Encoding: identity', req(`POST ${post} HTTP/1.1`, ['Host: x', 'Transfer-Encoding: identity'], '{}')),
    one('Expect: 100-continue', req(`POST ${post} HTTP/1.1`, ['Host: x', 'Expect: 100-continue', 'Content-Length: 2'], '{}')),
    one('Expect: bogus', req(`POST ${post} HTTP/1.1`, ['Host: x', 'Expect: bogus', 'Content-Length: 2'], '{}')),
    one(
      'invalid UTF-8 JSON',
      req(`POST ${post} HTTP/1.1`, ['Host: x', 'Content-Type: application/json', 'Content-Length: 6'], Buffer.from([0x7b, 0x22, 0xc3, 0x28, 0x22, 0x7d])),
    ),
    one(
      'UTF-16 JSON',
      req(`POST ${post} HTTP/1.1`, ['Host: x', 'Content-Type: application/json; charset=utf-16', 'Content-Length: 4'], Buffer.from('{}', 'utf16le')),
    ),
    one('JSON nested 200,000 deep', req(`POST ${post} HTTP/1.1`, ['Host: x', 'Content-Type: application/json', `Content-Length: ${deep.length}`], deep)),
    one(
      '4 MiB body',
      req(`POST ${post} HTTP/1.1`, ['Host: x', 'Content-Type: application/json', `Content-Length: ${4 * 1024 * 1024}`], Buffer.alloc(4 * 1024 * 1024, 0x20)),
    ),
    one('number 1e999999', req(`POST ${post} HTTP/1.1`, ['Host: x', 'Content-Type: application/json', 'Content-Length: 8'], '1e999999')),
    one(
      '__proto__ body',
      req(`POST ${post} HTTP/1.1`, ['Host: x', 'Content-Type: application/json', 'Content-Length: 36'], '{"__proto__":{"polluted":true},"a":1}'.slice(0, 36)),
    ),
    one('pipelined garbage after a request', Buffer.concat([req(`GET ${p} HTTP/1.1`, ['Host: x']), Buffer.from('\x16\x03\x01garbage\r\n\r\n', 'latin1')])),
    one('TLS ClientHello bytes on a plain request', Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03])),
    one('valid body', req(`POST ${post} HTTP/1.1`, ['Host: x', 'Content-Type: application/json', `Content-Length: ${Buffer.byteLength(t.body)}`], t.body)),
  );
  // The same request one byte per write: parsers must not depend on where reads end.
  const whole = req(`POST ${post} HTTP/1.1`, ['Host: x', 'Content-Type: application/json', `Content-Length: ${Buffer.byteLength(t.body)}`], t.body);
  cases.push({ name: 'valid request, one byte per write', chunks: [...whole.subarray(0, 200)].map((b) => Buffer.from([b])).concat([whole.subarray(200)]) });
  return cases;
}

const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'TRACE', 'CONNECT', 'PRI', 'M-SEARCH', 'get', 'GET ', ' GET', 'POST\t'];
const VERSIONS = ['HTTP/1.1', 'HTTP/1.0', 'HTTP/1.2', 'HTTP/2.0', 'HTTP/1', 'HTTP/1.1\t', 'http/1.1', 'HTTP/11', 'HTTPS/1.1', ''];
const HEADER_NAMES = [
  'Host',
  'Content-Length',
  'Transfer-Encoding',
  'Content-Type',
  'Authorization',
  'Connection',
  'Upgrade',
  'Expect',
  'Accept-Encoding',
  'Cookie',
  'X-Nemutator-Container',
  'Sec-WebSocket-Key',
  'Sec-WebSocket-Version',
  'Content-Encoding',
  'Range',
  'TE',
  'Trailer',
  'Keep-Alive',
];
const NASTY = [
  '[',
  ']',
  '%',
  '%zz',
  '%00',
  ':',
  '@',
  '#',
  '?',
  '\\',
  '/',
  '..',
  ' ',
  '\t',
  '\0',
  '\r',
  '\n',
  '\x7f',
  '\xff',
  '\u00e9',
  '99999',
  '-1',
  '0x10',
  'chunked',
  'close',
  'upgrade',
  'websocket',
  'Bearer ',
  '{',
  '}',
  '"',
];

/** Generated cases: a request built from pieces, some of them hostile, framed and split at random. */
export function generatedCases(t: Target, seed: number, count: number): FuzzCase[] {
  const rnd = prng(seed);
  const int = (n: number) => Math.floor(rnd() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  const bytes = (n: number, printable: boolean) => Buffer.from(Array.from({ length: n }, () => (printable ? 0x20 + int(95) : int(256))));
  const nasty = (n: number) => Array.from({ length: n }, () => (rnd() < 0.5 ? pick(NASTY) : String.fromCharCode(0x21 + int(94)))).join('');
  const target = (): string => {
    switch (int(8)) {
      case 0:
        return pick(ABSOLUTE_FORM_TARGETS);
      case 1:
        return `${pick(['http', 'https', 'ws', 'x', ''])}://${nasty(int(12))}${rnd() < 0.5 ? ':' + pick(['0', '65536', '99999', 'abc', '', '-1']) : ''}${pick(t.paths)}`;
      case 2:
        return pick(t.paths) + nasty(1 + int(8));
      case 3:
        return bytes(1 + int(40), rnd() < 0.7).toString('latin1');
      case 4:
        return '/' + 'a/'.repeat(int(5000));
      case 5:
        return pick(t.paths) + '?' + nasty(int(30));
      default:
        return pick(t.paths);
    }
  };
  const mutateBody = (): Buffer => {
    const b = Buffer.from(t.body);
    const n = 1 + int(6);
    for (let i = 0; i < n; i++) {
      const at = int(b.length);
      const op = int(3);
      if (op === 0) b[at] = int(256);
      else if (op === 1) b[at] = pick([0x5b, 0x5d, 0x7b, 0x7d, 0x22, 0x5c, 0x2c, 0x3a]);
      else b.fill(0x20, at, Math.min(b.length, at + int(20)));
    }
    return b;
  };
  const body = (): Buffer => {
    switch (int(7)) {
      case 0:
        return Buffer.alloc(0);
      case 1:
        return bytes(int(2000), false);
      case 2:
        return mutateBody();
      case 3:
        return Buffer.from('['.repeat(1 + int(20_000)));
      case 4:
        return Buffer.from(t.body);
      case 5:
        return Buffer.from(
          JSON.stringify({
            apiVersion: nasty(4),
            kind: nasty(4),
            request: rnd() < 0.5 ? nasty(6) : { uid: nasty(5), kind: { kind: nasty(3) }, object: nasty(3) },
          }),
        );
      default:
        return bytes(int(300), true);
    }
  };
  const cases: FuzzCase[] = [];
  for (let i = 0; i < count; i++) {
    const method = rnd() < 0.85 ? pick(METHODS) : nasty(1 + int(6));
    const version = rnd() < 0.8 ? 'HTTP/1.1' : pick(VERSIONS);
    const payload = body();
    const headers: string[] = [];
    if (rnd() < 0.9) headers.push('Host: ' + (rnd() < 0.8 ? 'localhost' : nasty(int(10))));
    const framing = int(5);
    if (framing === 0) headers.push(`Content-Length: ${payload.length}`);
    else if (framing === 1) headers.push(`Content-Length: ${pick([payload.length + 1 + int(100), Math.max(0, payload.length - 1 - int(100)), nasty(3)])}`);
    else if (framing === 2) headers.push('Transfer-Encoding: chunked');
    const extra = int(6);
    for (let h = 0; h < extra; h++) {
      const name = rnd() < 0.8 ? pick(HEADER_NAMES) : nasty(1 + int(8));
      const value = rnd() < 0.5 ? nasty(int(20)) : bytes(int(rnd() < 0.05 ? 20_000 : 60), rnd() < 0.8).toString('latin1');
      headers.push(`${name}: ${value}`);
    }
    let bodyBytes = payload;
    if (framing === 2) {
      const size = rnd() < 0.8 ? payload.length.toString(16) : nasty(3);
      bodyBytes = Buffer.concat([Buffer.from(`${size}\r\n`), payload, Buffer.from(rnd() < 0.8 ? '\r\n0\r\n\r\n' : nasty(4))]);
    }
    const eol = rnd() < 0.9 ? crlf : pick(['\n', '\r', '\r\r\n', '']);
    const head = Buffer.from(`${method} ${target()} ${version}${eol}${headers.map((h) => h + eol).join('')}${eol}`, 'latin1');
    const whole = Buffer.concat([head, bodyBytes]);
    // Split at random places, sometimes.
    const chunks: Buffer[] = [];
    if (rnd() < 0.3) {
      let at = 0;
      while (at < whole.length) {
        const n = 1 + int(Math.min(200, whole.length - at));
        chunks.push(whole.subarray(at, at + n));
        at += n;
      }
    } else chunks.push(whole);
    cases.push({ name: `generated #${i} (seed ${seed})`, chunks });
  }
  return cases;
}

/** HTTP/2 frames: the connection preface, then frames with random types, flags, streams and payloads. */
export function http2Cases(seed: number, count: number): FuzzCase[] {
  const rnd = prng(seed);
  const int = (n: number) => Math.floor(rnd() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  const preface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
  const frame = (type: number, flags: number, stream: number, payload: Buffer, lie?: number) => {
    const h = Buffer.alloc(9);
    h.writeUIntBE(lie ?? payload.length, 0, 3);
    h[3] = type;
    h[4] = flags;
    h.writeUInt32BE(stream >>> 0, 5);
    return Buffer.concat([h, payload]);
  };
  const settings = frame(4, 0, 0, Buffer.alloc(0));
  const cases: FuzzCase[] = [];
  for (let i = 0; i < count; i++) {
    const frames: Buffer[] = [rnd() < 0.9 ? preface : Buffer.from(preface.subarray(0, int(preface.length)))];
    if (rnd() < 0.7) frames.push(settings);
    const n = 1 + int(6);
    for (let f = 0; f < n; f++) {
      const type = rnd() < 0.8 ? int(10) : int(256);
      const stream = pick([0, 1, 3, 2, 0x7fffffff, int(100)]);
      const payload = Buffer.from(Array.from({ length: rnd() < 0.05 ? 20_000 : int(64) }, () => int(256)));
      frames.push(frame(type, int(256), stream, payload, rnd() < 0.1 ? int(1 << 24) : undefined));
    }
    cases.push({ name: `h2 frames #${i} (seed ${seed})`, chunks: frames });
  }
  return cases;
}

/** TLS-level garbage: plain HTTP on a TLS port, broken and random ClientHellos. */
export function tlsGarbageCases(seed: number, count: number): FuzzCase[] {
  const rnd = prng(seed);
  const int = (n: number) => Math.floor(rnd() * n);
  const cases: FuzzCase[] = [
    { name: 'plain HTTP on a TLS port', chunks: [Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')] },
    { name: 'record header claiming 16 MiB', chunks: [Buffer.from([0x16, 0x03, 0x01, 0xff, 0xff, 0x01, 0xff, 0xff, 0xff])] },
    { name: 'SSLv2 hello', chunks: [Buffer.from([0x80, 0x2e, 0x01, 0x00, 0x02, 0x00, 0x15, 0x00, 0x00, 0x00, 0x10])] },
  ];
  for (let i = 0; i < count; i++) {
    const body = Buffer.from(Array.from({ length: int(600) }, () => int(256)));
    const head = rnd() < 0.7 ? Buffer.from([0x16, 0x03, int(5), int(256), int(256)]) : Buffer.alloc(0);
    cases.push({ name: `tls garbage #${i} (seed ${seed})`, chunks: [Buffer.concat([head, body])] });
  }
  return cases;
}

export interface Outcome {
  /** HTTP/1.x status of the first answer, if one came. */
  status?: number;
  /** The server closed the connection (after answering or not). */
  closed: boolean;
  /** Neither an answer nor a close within the wait: a connection that never ends. */
  hung: boolean;
  bytes: number;
}

export type Dial = () => { socket: Socket; ready: string };

export const dialTcp =
  (host: string, port: number): Dial =>
  () => ({ socket: netConnect({ host, port }), ready: 'connect' });
export const dialUnix =
  (path: string): Dial =>
  () => ({ socket: netConnect({ path }), ready: 'connect' });
export const dialTls =
  (host: string, port: number, alpn: string[] = ['http/1.1']): Dial =>
  () => ({
    socket: tlsConnect({ host, port, rejectUnauthorized: false, ALPNProtocols: alpn, servername: 'localhost' }) as TLSSocket as Socket,
    ready: 'secureConnect',
  });

/** Sends one case, half-closes, and waits (up to `waitMs`) for the server to close. */
export function send(dial: Dial, c: FuzzCase, waitMs: number): Promise<Outcome> {
  return new Promise((resolve) => {
    const { socket, ready } = dial();
    let head = '';
    let bytes = 0;
    let settled = false;
    const done = (o: Omit<Outcome, 'status' | 'bytes'>) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
      resolve({ ...o, bytes, ...(m ? { status: Number(m[1]) } : {}) });
    };
    const timer = setTimeout(() => done({ closed: false, hung: true }), waitMs);
    socket.on('data', (d: Buffer) => {
      bytes += d.length;
      if (head.length < 64) head += d.subarray(0, 64).toString('latin1');
    });
    socket.on('error', () => done({ closed: true, hung: false }));
    socket.on('close', () => done({ closed: true, hung: false }));
    socket.once(ready, () => {
      void (async () => {
        for (const chunk of c.chunks) {
          if (socket.destroyed) return;
          if (!socket.write(chunk)) await new Promise((r) => socket.once('drain', r));
        }
        socket.end();
      })().catch(() => undefined);
    });
  });
}

/** Runs `cases` with `concurrency` connections at a time. */
export async function runCases(dial: Dial, cases: FuzzCase[], opts: { concurrency: number; waitMs: number }): Promise<Array<{ c: FuzzCase; o: Outcome }>> {
  const results: Array<{ c: FuzzCase; o: Outcome }> = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: opts.concurrency }, async () => {
      while (next < cases.length) {
        const c = cases[next++]!;
        results.push({ c, o: await send(dial, c, opts.waitMs) });
      }
    }),
  );
  return results;
}
