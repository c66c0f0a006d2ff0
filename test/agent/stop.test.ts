// Stopping the agent: its parts stop in the reverse order of their start (the fleet link and
// /metrics before the sockets and the pod informer they read), and stop() may be called again
// (main.ts on a second signal, local mode on shutdown after a failed step) without running any
// part's stop twice or in another order.
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { startAgent, StopSteps } from '#agent/app.js';
import { agentSchema } from '#agent/config.js';
import { loadConfig } from '#common/config.js';
import { createLogger } from '#common/log.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nemu-agent-stop-'));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('StopSteps', () => {
  it('runs the steps last-added first, once, however often and however concurrently it is asked', async () => {
    const ran: string[] = [];
    const steps = new StopSteps();
    for (const name of ['pods', 'secrets', 'csi', 'metrics', 'fleet']) steps.add(async () => void ran.push(name));
    await Promise.all([steps.run(), steps.run()]);
    await steps.run();
    expect(ran).toEqual(['fleet', 'metrics', 'csi', 'secrets', 'pods']);
  });

  it('a failed step is the answer of every stop, and no later step is run twice', async () => {
    const ran: string[] = [];
    const steps = new StopSteps();
    steps.add(() => void ran.push('first added'));
    steps.add(() => {
      ran.push('failing');
      throw new Error('cannot stop');
    });
    await expect(steps.run()).rejects.toThrow('cannot stop');
    await expect(steps.run()).rejects.toThrow('cannot stop');
    expect(ran).toEqual(['failing']);
  });
});

describe('agent.stop()', () => {
  it('stops every part, and a second stop() (concurrent or later) resolves without error', async () => {
    const socket = join(dir, 'csi', 'csi.sock');
    const { config } = loadConfig(agentSchema, {
      program: 'nemutator-agent',
      env: {},
      argv: [],
      defaults: {
        nodeName: 'node-3',
        controllerUrl: 'ws://127.0.0.1:9/fleet',
        host: '127.0.0.1',
        metricsPort: 0,
        metricsAuth: 'none',
        csiSocket: socket,
        csiKubeletDir: join(dir, 'kubelet'),
        socketPath: join(dir, 'run', 'agent.sock'),
      },
    });
    const agent = await startAgent(config, { log: createLogger({ level: 'silent' }), ca: '', token: () => 'unused', podNames: () => undefined });
    expect((await fetch(agent.metricsUrl!)).status).toBe(200);
    expect(existsSync(socket)).toBe(true);

    await Promise.all([agent.stop(), agent.stop()]);
    await agent.stop();

    expect(existsSync(socket)).toBe(false);
    const refused = await fetch(agent.metricsUrl!).then(
      () => undefined,
      (e: Error & { cause?: { code?: string } }) => e.cause?.code,
    );
    expect(refused).toBe('ECONNREFUSED');
    expect(agent.client.state).toBe('stopped');
  });
});
