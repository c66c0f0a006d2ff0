// The fleet link between a real controller (fleet hub over WSS) and the agent's client.
import { mkdtempSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';

import { backoffDelay, FleetClient, type FleetClientOptions } from '#agent/fleet/client.js';
import { silentLogger } from '#common/log.js';
import { type RunningController, startController } from '#controller/app.js';
import { SharedTokenAgentAuthenticator } from '#controller/fleet/auth.js';
import { localAuthorizer } from '#controller/server/access.js';
import { StaticTokenAuthenticator } from '#controller/server/auth.js';
import { decodeEnvelope, encodeEnvelope, type INodeReport } from '#proto/codec.js';

import { testControllerConfig } from '../harness/controller.ts';
import { freePort } from '../harness/ports.ts';
import { until } from '../harness/wait.ts';

const AGENT_TOKEN = 'agent-token-for-tests';

async function controller(stateDir: string, ports?: { webhook: number; api: number; fleet: number }): Promise<RunningController> {
  const config = testControllerConfig({
    stateDir,
    webhookPort: ports?.webhook ?? 0,
    apiPort: ports?.api ?? 0,
    fleetPort: ports?.fleet ?? 0,
    fleetMaxFrameBytes: 64 * 1024,
  });
  return startController(config, {
    log: silentLogger,
    mode: 'local',
    apiAuth: new StaticTokenAuthenticator('admin'),
    authorizer: localAuthorizer,
    agentAuth: new SharedTokenAgentAuthenticator(AGENT_TOKEN),
  });
}

let seq = 0;
function report(node: string): INodeReport {
  return { nodeName: node, timeUnixMs: Date.now(), seq: ++seq, node: { cpuCores: 2, cpuUsageCores: 0.5, memoryTotalBytes: 1 << 30 }, pods: [] };
}

function agentOptions(url: string, node: string): FleetClientOptions {
  return {
    url,
    ca: '',
    token: () => AGENT_TOKEN,
    nodeName: node,
    version: 'test',
    log: silentLogger,
    collect: async () => report(node),
    reportIntervalMs: 200,
    heartbeatMs: 1000,
    reconnectMinMs: 50,
    reconnectMaxMs: 400,
    queueReports: 6,
    maxFrameBytes: 64 * 1024,
    onCommand: async (cmd) => ({ echo: { text: `pong:${cmd.echo?.text}` } }),
  };
}

function agent(c: RunningController, opts: { token?: string; node?: string; queue?: number; url?: string } = {}): FleetClient {
  const node = opts.node ?? 'node-a';
  return new FleetClient({
    ...agentOptions(opts.url ?? c.fleetUrl, node),
    ca: c.tls.caPem,
    token: () => opts.token ?? AGENT_TOKEN,
    queueReports: opts.queue ?? 6,
  });
}

function raw(c: RunningController): Promise<WebSocket> {
  const ws = new WebSocket(c.fleetUrl, { ca: c.tls.caPem });
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

function closed(ws: WebSocket): Promise<{ code: number; frames: Buffer[] }> {
  const frames: Buffer[] = [];
  ws.on('message', (d) => frames.push(d as Buffer));
  return new Promise((r) => ws.once('close', (code) => r({ code, frames })));
}

describe('fleet link', () => {
  const cleanup: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  it('carries reports from an authenticated agent into the registry, and commands back', async () => {
    const c = await controller(mkdtempSync(join(tmpdir(), 'nemu-fleet-')));
    cleanup.push(() => c.stop());
    const a = agent(c);
    cleanup.push(() => a.stop());
    a.start();
    const entry = await until('a report', () => c.registry.get('node-a')?.report && c.registry.get('node-a'));
    expect(entry.connected).toBe(true);
    expect(entry.agentVersion).toBe('test');
    expect(entry.report?.node?.cpuCores).toBe(2);
    const result = await c.hub.command('node-a', { echo: { text: 'ping' } }, 2000);
    expect(result.echo?.text).toBe('pong:ping');
    await expect(c.hub.command('node-zzz', { echo: { text: 'x' } }, 500)).rejects.toThrow(/no agent is connected for node node-zzz/);
  });

  it('refuses an agent with a wrong or missing token before reading any report', async () => {
    const c = await controller(mkdtempSync(join(tmpdir(), 'nemu-fleet-')));
    cleanup.push(() => c.stop());
    for (const token of ['wrong-token', '']) {
      const a = agent(c, { token, node: `bad-${token || 'none'}` });
      cleanup.push(() => a.stop());
      const refused = new Promise<{ code?: string | null; message?: string | null }>((r) => a.once('refused', r));
      a.start();
      const err = await refused;
      expect(err.code).toBe('NEMU_ERR_FLEET_AUTH');
      expect(err.message).toMatch(token ? /not valid/ : /no token/);
      await a.stop();
      expect(c.registry.get(`bad-${token || 'none'}`)).toBeUndefined();
    }
    // A connection that sends a report instead of a Hello is refused too.
    const ws = await raw(c);
    const done = closed(ws);
    ws.send(encodeEnvelope({ report: report('sneaky') }));
    const { code, frames } = await done;
    expect(code).toBe(4401);
    expect(decodeEnvelope(frames[0]!).error?.message).toMatch(/first frame must be a Hello/);
    expect(c.registry.get('sneaky')).toBeUndefined();
  });

  it('rejects garbage, text and oversized frames without a crash', async () => {
    const c = await controller(mkdtempSync(join(tmpdir(), 'nemu-fleet-')));
    cleanup.push(() => c.stop());
    const garbage = await raw(c);
    const g = closed(garbage);
    garbage.send(Buffer.from([0xff, 0xfe, 0x01, 0x02, 0x03]));
    const gr = await g;
    expect(gr.code).toBe(4400);
    expect(decodeEnvelope(gr.frames[0]!).error?.code).toBe('NEMU_ERR_FLEET_FRAME');

    const text = await raw(c);
    const t = closed(text);
    text.send('hello?');
    expect((await t).code).toBe(4400);

    const big = await raw(c);
    const b = closed(big);
    big.send(Buffer.alloc(128 * 1024, 1));
    expect((await b).code).toBe(1009); // message too big

    // Still serving: a good agent connects and reports.
    const a = agent(c);
    cleanup.push(() => a.stop());
    a.start();
    await until('a report after the garbage', () => c.registry.get('node-a')?.report);
  });

  it('survives a controller restart: the agent reconnects and reports resume', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nemu-fleet-'));
    const ports = { webhook: await freePort(), api: await freePort(), fleet: await freePort() };
    let c = await controller(dir, ports);
    const a = agent(c);
    cleanup.push(() => a.stop());
    a.start();
    await until('first report', () => c.registry.get('node-a')?.report);
    await c.stop();
    await until('the agent noticing', () => a.state !== 'connected');
    c = await controller(dir, ports);
    cleanup.push(() => c.stop());
    const entry = await until('a report after the restart', () => c.registry.get('node-a')?.report && c.registry.get('node-a'));
    expect(entry.connected).toBe(true);
  });

  it('keeps a bounded queue of reports while the controller is away, dropping the oldest', async () => {
    const port = await freePort();
    const c = { fleetUrl: `wss://127.0.0.1:${port}/fleet`, tls: { caPem: '' } } as unknown as RunningController;
    const a = agent(c, { queue: 2 });
    cleanup.push(() => a.stop());
    a.start();
    for (let i = 0; i < 5; i++) await a.tick();
    expect(a.droppedReports).toBeGreaterThanOrEqual(3);
    expect(a.sentReports).toBe(0);
  });

  it('opens no link when stopped while the token is still being read', async () => {
    const server = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    cleanup.push(
      () =>
        new Promise<void>((r) => {
          for (const client of server.clients) client.terminate();
          server.close(() => r());
        }),
    );
    await new Promise((r) => server.once('listening', r));
    const paths: string[] = [];
    server.on('connection', (_ws, req) => paths.push(req.url ?? ''));
    const url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}`;
    let release!: (token: string) => void;
    let asked = false;
    const a = new FleetClient({
      ...agentOptions(url, 'node-a'),
      ca: '',
      token: () => {
        asked = true;
        return new Promise((r) => (release = r));
      },
    });
    a.start();
    await until('the token being read', () => asked);
    await a.stop();
    release(AGENT_TOKEN);
    // Let the client's connect() resume, then prove the server saw only the probe.
    await new Promise((r) => setImmediate(r));
    const probe = new WebSocket(`${url}/probe`);
    cleanup.push(async () => probe.terminate());
    await until('the probe connected', () => paths.includes('/probe'));
    expect(paths).toEqual(['/probe']);
    expect(a.state).toBe('stopped');
  });
});

describe('reconnection backoff', () => {
  it('uses full jitter under an exponential cap', () => {
    expect(backoffDelay(0, 500, 30_000, () => 0.999)).toBeLessThan(500);
    expect(backoffDelay(3, 500, 30_000, () => 0.999)).toBeLessThan(4000);
    expect(backoffDelay(3, 500, 30_000, () => 0.999)).toBeGreaterThan(3900);
    expect(backoffDelay(20, 500, 30_000, () => 0.999)).toBeLessThan(30_000);
    expect(backoffDelay(20, 500, 30_000, () => 0)).toBe(0);
  });
});
