// Every listener survives every request (issue 15): hostile bytes at the REST API, the webhook
// (HTTP/1.1 and HTTP/2 over TLS), the fleet hub, the agent's /metrics and its secrets socket.
// The programs run in child processes, so a crash is an exit the test sees. Each case must
// end in an answer below 500 or a closed connection, never a connection left hanging; after
// the cases the process is still running and serves a normal request.
//
//   FUZZ_SEED=<n> FUZZ_CASES=<n per listener> npx vitest run test/reliability/listener-fuzz.test.ts
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { connect as h2connect } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';

import { type LocalProcess, startLocalProcess } from '../harness/local-process.ts';
import { until } from '../harness/wait.ts';
import {
  ABSOLUTE_FORM_TARGETS,
  type Dial,
  dialTcp,
  dialTls,
  dialUnix,
  fixedCases,
  type FuzzCase,
  generatedCases,
  http2Cases,
  type Outcome,
  runCases,
  tlsGarbageCases,
} from './http-fuzz.ts';

const SEED = Number(process.env.FUZZ_SEED ?? 15_2024);
const CASES = Number(process.env.FUZZ_CASES ?? 1000);
const WAIT_MS = 15_000;

const review = (uid: string) =>
  JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      operation: 'CREATE',
      namespace: 'shop',
      object: { metadata: { name: 'p', labels: { a: 'b' } }, spec: { containers: [{ name: 'c', image: 'nginx' }] } },
    },
  });

let proc: LocalProcess;
beforeAll(async () => {
  // Short header, request and idle deadlines so that cases which stall are closed by the
  // server within the test's wait (the defaults are 10 s, 30 s and 60 s).
  proc = await startLocalProcess(['--headers-timeout', '2s', '--request-timeout', '4s', '--idle-timeout', '4s', '--fleet-upgrade-timeout', '3s']);
});
afterAll(() => proc?.kill());

function hostPort(url: string): { host: string; port: number } {
  const u = new URL(url);
  return { host: u.hostname, port: Number(u.port) };
}

/** The verdict on a run: cases answered 5xx and cases left hanging, by name (empty when all is well). */
function failures(results: Array<{ c: FuzzCase; o: Outcome }>): string[] {
  return results
    .filter(({ o }) => o.hung || (o.status !== undefined && o.status >= 500))
    .map(({ c, o }) => `${c.name}: ${o.hung ? 'no answer and not closed' : `HTTP ${o.status}`}`);
}

function expectAlive(p: { exited(): unknown; output(): string }): void {
  expect(p.exited(), `the process exited; its output:\n${p.output().slice(-4000)}`).toBeUndefined();
}

function h2review(url: string, body: string): Promise<{ status: number; body: string }> {
  const client = h2connect(url.replace(/\/mutate$/, ''), { rejectUnauthorized: false });
  return new Promise((resolve, reject) => {
    client.on('error', reject);
    const req = client.request({ ':method': 'POST', ':path': '/mutate', 'content-type': 'application/json' });
    let status = 0;
    let text = '';
    req.on('response', (h) => (status = Number(h[':status'])));
    req.on('data', (d) => (text += d));
    req.on('end', () => {
      client.close();
      resolve({ status, body: text });
    });
    req.on('error', reject);
    req.end(body);
  });
}

function summary(name: string, results: Array<{ o: Outcome }>): string {
  const by = new Map<string, number>();
  for (const { o } of results) {
    const k = o.status !== undefined ? String(o.status) : o.hung ? 'hung' : 'closed';
    by.set(k, (by.get(k) ?? 0) + 1);
  }
  return `${name}: ${results.length} cases → ${[...by].map(([k, v]) => `${k}×${v}`).join(' ')}`;
}

describe('every listener survives every request', () => {
  it('REST API: the absolute-form targets, then the corpus and generated requests; alive and serving after', async () => {
    const { host, port } = hostPort(proc.apiUrl);
    const dial = dialTcp(host, port);
    const target = { paths: ['/healthz', '/api/v1/dictionary/k', '/api/v1/nodes', '/api/v1/mutations', '/readyz'], body: JSON.stringify({ value: 'v' }) };
    // The targets of the issue, one by one, each followed by a health check.
    for (const t of ABSOLUTE_FORM_TARGETS.slice(0, 5)) {
      const [r] = await runCases(dial, [{ name: t, chunks: [Buffer.from(`GET ${t} HTTP/1.1\r\nHost: x\r\n\r\n`)] }], { concurrency: 1, waitMs: WAIT_MS });
      expect(r!.o.status, t).toBe(400);
      expectAlive(proc);
      expect((await fetch(`${proc.apiUrl.replace(/\/api\/v1$/, '')}/healthz`)).status).toBe(200);
    }
    const results = await runCases(dial, [...fixedCases(target), ...generatedCases(target, SEED, CASES)], { concurrency: 16, waitMs: WAIT_MS });
    console.log(summary('REST API', results));
    expect(failures(results)).toEqual([]);
    expectAlive(proc);
    const nodes = await fetch(`${proc.apiUrl}/nodes`, { headers: { authorization: `Bearer ${proc.adminToken}` } });
    expect(nodes.status).toBe(200);
  }, 300_000);

  it('webhook: HTTP/1.1 and HTTP/2 cases over TLS, TLS garbage; alive and answering reviews after', async () => {
    const { host, port } = hostPort(proc.webhookUrl);
    const target = { paths: ['/mutate', '/healthz', '/readyz', '/metrics'], body: review('fuzz') };
    const h1 = await runCases(dialTls(host, port), [...fixedCases(target), ...generatedCases(target, SEED + 1, CASES)], { concurrency: 16, waitMs: WAIT_MS });
    const h2 = await runCases(dialTls(host, port, ['h2']), http2Cases(SEED + 2, Math.ceil(CASES / 2)), { concurrency: 16, waitMs: WAIT_MS });
    const tls = await runCases(dialTcp(host, port), tlsGarbageCases(SEED + 3, 100), { concurrency: 16, waitMs: WAIT_MS });
    console.log(summary('webhook h1', h1));
    console.log(summary('webhook h2', h2));
    console.log(summary('webhook tls', tls));
    expect([...failures(h1), ...failures(h2), ...failures(tls)]).toEqual([]);
    // HTTP/2 requests with targets and headers a client library will send.
    for (const path of ['http://[', '*', '/mutate?%zz', '/%00', '//x']) {
      const client = h2connect(`https://${host}:${port}`, { rejectUnauthorized: false });
      client.on('error', () => undefined);
      const status = await new Promise<number>((resolve) => {
        const req = client.request({ ':method': 'POST', ':path': path, 'content-type': 'application/json' });
        req.on('response', (h) => resolve(Number(h[':status'])));
        req.on('error', () => resolve(0));
        req.on('close', () => resolve(0));
        req.end('{');
      });
      client.destroy();
      expect(status === 0 || (status >= 400 && status < 500), `${path}: ${status}`).toBe(true);
    }
    expectAlive(proc);
    const answer = await h2review(proc.webhookUrl, review('after-fuzz'));
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body).response).toMatchObject({ uid: 'after-fuzz', allowed: true });
  }, 300_000);

  it('fleet hub: HTTP/1.1 cases and upgrades over TLS, TLS garbage; alive and upgrading after', async () => {
    const { host, port } = hostPort(proc.fleetUrl);
    const target = { paths: ['/fleet', '/', '/healthz'], body: '{}' };
    const results = await runCases(dialTls(host, port), [...fixedCases(target), ...generatedCases(target, SEED + 4, CASES)], {
      concurrency: 16,
      waitMs: WAIT_MS,
    });
    const tls = await runCases(dialTcp(host, port), tlsGarbageCases(SEED + 5, 100), { concurrency: 16, waitMs: WAIT_MS });
    console.log(summary('fleet', results));
    expect([...failures(results), ...failures(tls)]).toEqual([]);
    expectAlive(proc);
    // A WebSocket still opens (the Hello that would follow is the fleet link tests' business).
    const ws = new WebSocket(proc.fleetUrl, { rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    ws.terminate();
  }, 300_000);

  it("agent's /metrics: the corpus and generated requests; alive and scraping after", async () => {
    const { host, port } = hostPort(proc.agentMetricsUrl);
    const target = { paths: ['/metrics', '/healthz'], body: '{}' };
    const results = await runCases(dialTcp(host, port), [...fixedCases(target), ...generatedCases(target, SEED + 6, CASES)], {
      concurrency: 16,
      waitMs: WAIT_MS,
    });
    console.log(summary('agent metrics', results));
    expect(failures(results)).toEqual([]);
    expectAlive(proc);
    const page = await fetch(proc.agentMetricsUrl);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('# TYPE');
  }, 300_000);
});

describe("the agent's secrets socket survives every request", () => {
  let host: ChildProcess;
  let dir: string;
  let socketPath: string;
  let out = '';
  let exit: { code: number | null; signal: string | null } | undefined;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'nemu-sock-'));
    socketPath = join(dir, 'agent.sock');
    host = spawn(process.execPath, ['--import', 'tsx', 'test/reliability/secrets-socket-host.ts', socketPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    host.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    host.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    host.once('exit', (code, signal) => (exit = { code, signal }));
    await until(
      'the secrets socket',
      () => {
        if (exit) throw new Error(`the secrets socket host exited: ${out}`);
        return out.includes('listening');
      },
      60_000,
    );
  });
  afterAll(() => {
    host?.kill('SIGKILL');
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const get = (path: string) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest({ socketPath, path, method: 'GET' }, (res) => {
        let t = '';
        res.on('data', (d) => (t += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: t }));
      });
      req.on('error', reject);
      req.end();
    });

  it('answers the corpus and generated requests with 4xx or a close; alive and answering after', async () => {
    const dial: Dial = dialUnix(socketPath);
    const target = { paths: ['/v1/secrets', '/v1/secrets/watch', '/v1/ack'], body: JSON.stringify({ path: 'secret/app', version: 1 }) };
    const results = await runCases(dial, [...fixedCases(target), ...generatedCases(target, SEED + 7, CASES)], { concurrency: 16, waitMs: WAIT_MS });
    console.log(summary('secrets socket', results));
    expect(failures(results)).toEqual([]);
    expect(exit, `the secrets socket host exited:\n${out.slice(-4000)}`).toBeUndefined();
    // The test is not a pod: a normal request is refused with the code that says so.
    const answer = await get('/v1/secrets');
    expect(answer.status).toBe(403);
    expect(JSON.parse(answer.body).code).toBe('NEMU_ERR_SECRETS_NOT_A_POD');
  }, 300_000);
});
