// The whole agent (startAgent with vaultAddr) serving secrets: its logs, its error answers
// and its /metrics never contain a secret value, through reads, denials, rotation, acks and
// a Vault outage. The value is searched for in everything captured.
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type RunningAgent, startAgent } from '#agent/app.js';
import { agentSchema } from '#agent/config.js';
import { loadConfig } from '#common/config.js';
import { createLogger } from '#common/log.js';

import { until } from '../harness/wait.ts';
import { NODE, startWorld, type World } from './world.ts';

const VALUE = 'LeakCanary-' + Math.random().toString(36).slice(2);
const ROTATED = 'LeakCanary2-' + Math.random().toString(36).slice(2);

let world: World;
let agent: RunningAgent;
const logs: string[] = [];

beforeAll(async () => {
  world = await startWorld();
  world.vault.put('secret/app/db', { password: VALUE });
  const { config } = loadConfig(agentSchema, {
    program: 'nemutator-agent',
    env: {},
    argv: [
      '--node-name',
      NODE,
      '--kubeconfig',
      world.kube.kubeconfigPath,
      '--vault-addr',
      world.vault.addr,
      '--socket-path',
      join(world.dir, 'full', 'agent.sock'),
      '--controller-url',
      'ws://127.0.0.1:9/fleet',
      '--host',
      '127.0.0.1',
      '--metrics-port',
      '0',
      '--metrics-auth',
      'none',
      '--rotation-interval',
      '500ms',
      '--max-staleness',
      '1s',
      '--log-level',
      'trace',
    ],
  });
  const log = createLogger({
    level: 'trace',
    destination: new Writable({
      write(c, _e, cb) {
        logs.push(String(c));
        cb();
      },
    }),
  });
  agent = await startAgent(config, { log, ca: '', token: () => 'agent-token' });
});
afterAll(async () => {
  await agent?.stop();
  await world?.stop();
});

describe('no secret value leaks', () => {
  it('through logs, errors and /metrics of the running agent', async () => {
    expect(agent.secrets, 'vaultAddr starts the secrets socket').toBeDefined();
    const pod = await world.pod({
      name: 'leaky-1',
      annotation: {
        v: 1,
        role: 'app',
        containers: { app: { env: { DB_PASSWORD: 'vault:secret/app/db#password', MISSING: 'vault:secret/app/db#nokey' } } },
        files: {},
      },
    });
    const c = await pod.client(agent.secrets!.server.path);
    const token = await pod.token();
    const answers: string[] = [];
    // A read whose document cannot be built (a declared key Vault lacks): an error, no value.
    const missing = await c.request({ path: '/v1/secrets', token, container: 'app' });
    answers.push(JSON.stringify(missing.body));
    expect((missing.body as { code: string }).code).toBe('NEMU_ERR_SECRETS_NOT_FOUND');
    // Denials of every kind.
    for (const r of [
      await c.request({ path: '/v1/secrets', token, container: 'nope' }),
      await c.request({ path: '/v1/secrets?path=secret/app/other', token, container: 'app' }),
      await c.request({ method: 'POST', path: '/v1/ack', token, container: 'app', body: { path: 'secret/app/db', version: 'x' } }),
    ]) {
      answers.push(JSON.stringify(r.body));
      expect(r.status).toBeGreaterThanOrEqual(400);
    }
    // A good read for the path alone, a watch, a rotation, an ack, an outage.
    const ok = await c.request({ path: '/v1/secrets?path=secret/app/db', token, container: 'app' });
    expect(ok.status).toBe(404); // MISSING still fails the document: values are all-or-nothing
    world.vault.put('secret/app/db', { password: ROTATED, nokey: 'present-now' });
    await agent.secrets!.handlers.rotate({ rotate: {} });
    const w = await c.watch({ token, container: 'app' });
    const full = await c.request({ path: '/v1/secrets', token, container: 'app' });
    expect(full.status).toBe(200);
    await c.request({ method: 'POST', path: '/v1/ack', token, container: 'app', body: { path: 'secret/app/db', version: 2 } });
    await world.vault.pause();
    // Past maxStaleness (1 s) the cached value is refused; the periodic checks fail meanwhile.
    const stale = await until(
      'a read refused as stale',
      async () => {
        const r = await c.request({ path: '/v1/secrets', token, container: 'app' });
        return r.status !== 200 && r;
      },
      30_000,
      100,
    );
    answers.push(JSON.stringify(stale.body));
    expect(stale.status).toBe(503);
    // A failed rotation check of the outage, counted on the agent's /metrics and logged without the value.
    await agent.secrets!.handlers.rotate({ rotate: {} });
    await world.vault.start();
    expect(w.status).toBe(200);

    const res = await fetch(agent.metricsUrl!);
    expect(res.status).toBe(200);
    const metrics = await res.text();
    expect(metrics).toMatch(/^nemutator_agent_secrets_rotation_errors_total\{code="NEMU_ERR_SECRETS_VAULT_UNAVAILABLE"\} [1-9]/m);
    expect(logs.join('')).toContain('secrets rotation check failed');
    const status = JSON.stringify(await agent.secrets!.handlers.secretStatus({ secretStatus: {} }));
    const everything = [logs.join(''), answers.join('\n'), metrics, status].join('\n');
    expect(logs.join('').includes('"audit":"read"')).toBe(true);
    for (const v of [VALUE, ROTATED, 'present-now']) expect(everything.includes(v), 'a secret value leaked').toBe(false);
  });
});
