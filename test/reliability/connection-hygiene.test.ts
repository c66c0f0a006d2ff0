// Connection hygiene (issue 15): connections that never end are ended. Short timeouts are
// configured so each bound is observed in a few seconds; the assertions allow generous slack
// (Node checks HTTP/1.1 deadlines about once a second).
import { readFileSync } from 'node:fs';
import { connect as h2connect } from 'node:http2';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { startTestLocal, type TestLocal } from '../harness/controller.ts';
import { openSessions, ordinaryReview, postReview } from '../harness/hostile-reviews.ts';
import { until } from '../harness/wait.ts';

let t: TestLocal;
let started = 0;
beforeAll(async () => {
  started = performance.now();
  t = await startTestLocal({ idleTimeout: 1000, headersTimeout: 1000, requestTimeout: 3000, fleetUpgradeTimeout: 1000, reportInterval: 10_000 });
});
afterAll(() => t?.stop());

const hostPort = (url: string) => {
  const u = new URL(url);
  return { host: u.hostname, port: Number(u.port) };
};

/** Opens a connection and resolves with the milliseconds until the server closed it. */
function closedAfter(socket: Socket, ready: string, onReady: (s: Socket) => void = () => undefined): Promise<number> {
  return new Promise((resolve) => {
    let opened = 0;
    socket.on('error', () => undefined);
    socket.resume(); // read whatever comes, so the server's FIN is seen
    socket.once(ready, () => {
      opened = performance.now();
      onReady(socket);
    });
    socket.once('close', () => resolve(performance.now() - opened));
  });
}

describe('idle and slow connections are closed', () => {
  it('an idle HTTP/2 session on the webhook gets a GOAWAY and is closed within idleTimeout', async () => {
    const session = h2connect(t.local.webhookUrl.replace(/\/mutate$/, ''), { rejectUnauthorized: false });
    session.on('error', () => undefined);
    const started = performance.now();
    let goaway = false;
    session.on('goaway', () => (goaway = true));
    await until('the idle session to close', () => session.closed || session.destroyed, 10_000);
    expect(goaway).toBe(true);
    expect(performance.now() - started).toBeLessThan(1000 + 3000);
  });

  it('an HTTP/2 session in use is not closed while reviews keep coming', async () => {
    const [session] = openSessions(t.local.webhookUrl, 1);
    const started = performance.now();
    // Reviews back to back for 2.5 idle timeouts.
    while (performance.now() - started < 2500) expect((await postReview(session!, ordinaryReview('busy'))).status).toBe(200);
    expect(session!.closed).toBe(false);
    session!.destroy();
  });

  it('HTTP/1.1 on the webhook: a TLS connection that sends no request, and one that drips its headers, are closed', async () => {
    const { host, port } = hostPort(t.local.webhookUrl);
    const silent = closedAfter(tlsConnect({ host, port, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] }) as TLSSocket, 'secureConnect');
    let drip: NodeJS.Timeout | undefined;
    const slow = closedAfter(tlsConnect({ host, port, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] }) as TLSSocket, 'secureConnect', (s) => {
      s.write('POST /mutate HTTP/1.1\r\nHost: x\r\n');
      drip = setInterval(() => s.write('X-A: b\r\n'), 200);
    });
    expect(await silent).toBeLessThan(1000 + 3000);
    expect(await slow).toBeLessThan(3000 + 3000);
    clearInterval(drip);
  });

  it('the REST API closes idle keep-alive connections and slow headers', async () => {
    const { host, port } = hostPort(t.local.apiUrl);
    const silent = closedAfter(netConnect({ host, port }), 'connect');
    const keptAlive = closedAfter(netConnect({ host, port }), 'connect', (s) => s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'));
    expect(await silent).toBeLessThan(1000 + 3000);
    expect(await keptAlive).toBeLessThan(1000 + 3000);
  });

  it('the scheduler extender: a connection without a client certificate is refused at the handshake; one with it that sends nothing, or drips its headers, is closed', async () => {
    const { host, port } = hostPort(t.local.scheduler!.url);
    const creds = { cert: readFileSync(t.local.scheduler!.certFile), key: readFileSync(t.local.scheduler!.keyFile) };
    let answer = '';
    const refused = closedAfter(tlsConnect({ host, port, rejectUnauthorized: false }) as TLSSocket, 'connect', (s) => {
      s.on('data', (d: Buffer) => (answer += d.toString()));
      s.once('secureConnect', () => s.write('POST /scheduler/v1/prioritize HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}'));
    });
    expect(await refused).toBeLessThan(1000 + 3000);
    expect(answer).toBe('');
    const silent = closedAfter(tlsConnect({ host, port, rejectUnauthorized: false, ...creds }) as TLSSocket, 'secureConnect');
    let drip: NodeJS.Timeout | undefined;
    const slow = closedAfter(tlsConnect({ host, port, rejectUnauthorized: false, ...creds }) as TLSSocket, 'secureConnect', (s) => {
      s.write('POST /scheduler/v1/prioritize HTTP/1.1\r\nHost: x\r\n');
      drip = setInterval(() => s.write('X-A: b\r\n'), 200);
    });
    expect(await silent).toBeLessThan(1000 + 3000);
    expect(await slow).toBeLessThan(3000 + 3000);
    clearInterval(drip);
  });

  it('the fleet port: a connection that never upgrades is closed within fleetUpgradeTimeout; a GET without an upgrade gets 426 and is closed', async () => {
    const { host, port } = hostPort(t.local.fleetUrl);
    const idle = closedAfter(tlsConnect({ host, port, rejectUnauthorized: false }) as TLSSocket, 'secureConnect');
    expect(await idle).toBeLessThan(1000 + 3000);
    let answer = '';
    const plain = closedAfter(tlsConnect({ host, port, rejectUnauthorized: false }) as TLSSocket, 'secureConnect', (s) => {
      s.on('data', (d: Buffer) => (answer += d.toString()));
      s.write('GET /fleet HTTP/1.1\r\nHost: x\r\n\r\n');
    });
    expect(await plain).toBeLessThan(1000 + 3000);
    expect(answer).toMatch(/^HTTP\/1\.1 426/);
    expect(answer).toContain('NEMU_ERR_BAD_REQUEST');
  });

  it('the agent that is connected stays connected (its WebSocket is not subject to the upgrade deadline)', async () => {
    await until('three upgrade deadlines since start', () => performance.now() - started > 3000, 10_000, 100);
    const node = await until(
      'the node listed as connected',
      async () => {
        const res = await t.cli('nodes');
        return res.code === 0 && /connected/.test(res.out) ? res.out : undefined;
      },
      10_000,
    );
    expect(node).toMatch(/connected/);
  });
});

describe('header limits', () => {
  it('a request head over maxHeaderBytes is answered 431 on the webhook (HTTP/1.1 and HTTP/2) and the REST API', async () => {
    const big = 'a'.repeat(20_000);
    const { host, port } = hostPort(t.local.webhookUrl);
    const h1 = await new Promise<string>((resolve) => {
      const s = tlsConnect({ host, port, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
      let text = '';
      s.on('secureConnect', () => s.write(`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${big}\r\n\r\n`));
      s.on('data', (d: Buffer) => (text += d.toString()));
      s.on('close', () => resolve(text));
      s.on('error', () => undefined);
    });
    expect(h1).toMatch(/^HTTP\/1\.1 431/);
    const session = h2connect(`https://${host}:${port}`, { rejectUnauthorized: false });
    const h2 = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = session.request({ ':path': '/healthz', 'x-big': big });
      let status = 0;
      let body = '';
      req.on('response', (h) => (status = Number(h[':status'])));
      req.on('data', (d) => (body += d));
      req.on('end', () => resolve({ status, body }));
      req.on('error', reject);
      req.end();
    });
    session.destroy();
    expect(h2.status).toBe(431);
    expect(JSON.parse(h2.body).code).toBe('NEMU_ERR_HEADERS_TOO_LARGE');
    const api = await fetch(`${t.local.apiUrl.replace(/\/api\/v1$/, '')}/healthz`, { headers: { 'x-big': big } });
    expect(api.status).toBe(431);
  });
});

describe('a flood of idle connections', () => {
  it('1,000 idle TLS connections to the webhook leave it answering reviews', async () => {
    // Long timeouts here: the flood must still be open while the review is sent.
    const flooded = await startTestLocal({ idleTimeout: 60_000, headersTimeout: 60_000, requestTimeout: 60_000, reportInterval: 10_000 });
    const sockets: Socket[] = [];
    try {
      const { host, port } = hostPort(flooded.local.webhookUrl);
      let open = 0;
      for (let i = 0; i < 1000; i++) {
        const s = i % 2 === 0 ? tlsConnect({ host, port, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] }) : netConnect({ host, port });
        s.on('error', () => undefined);
        s.once(i % 2 === 0 ? 'secureConnect' : 'connect', () => open++);
        sockets.push(s);
      }
      await until('1,000 connections open', () => open >= 1000, 60_000);
      const [session] = openSessions(flooded.local.webhookUrl, 1);
      const answer = await postReview(session!, ordinaryReview('under-flood'));
      expect(answer.status).toBe(200);
      expect(answer.ms).toBeLessThan(5000);
      expect(sockets.filter((s) => s.destroyed).length).toBe(0);
      session!.destroy();
    } finally {
      for (const s of sockets) s.destroy();
      await flooded.stop();
    }
  }, 120_000);
});
