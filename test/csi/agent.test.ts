// The CSI plugin inside the agent process (agent/src/app.ts): on when csiSocket is set, off by
// default (local mode), its counters on the agent's /metrics, its socket gone after stop.
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type RunningAgent, startAgent } from '#agent/app.js';
import { agentSchema } from '#agent/config.js';
import { loadConfig } from '#common/config.js';
import type { NemuError } from '#common/errors.js';
import { createLogger } from '#common/log.js';

import { csiClient } from '../harness/kubelet.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nemu-csi-agent-'));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function agentWith(defaults: Record<string, unknown>): Promise<RunningAgent> {
  const { config } = loadConfig(agentSchema, {
    program: 'nemutator-agent',
    env: {},
    argv: [],
    defaults: { nodeName: 'node-7', controllerUrl: 'ws://127.0.0.1:9/fleet', host: '127.0.0.1', metricsPort: 0, metricsAuth: 'none', ...defaults },
  });
  return startAgent(config, { log: createLogger({ level: 'silent' }), ca: '', token: () => 'unused', podNames: () => undefined });
}

describe('the agent serves the CSI plugin', () => {
  it('when csiSocket is set: kubelet reaches it, refusals are counted on /metrics, stop removes the socket', async () => {
    const socket = join(dir, 'csi', 'csi.sock');
    const agent = await agentWith({ csiSocket: socket, csiKubeletDir: join(dir, 'kubelet'), socketPath: join(dir, 'run', 'agent.sock') });
    const client = csiClient(socket);
    try {
      expect(agent.csi?.socketPath).toBe(socket);
      expect(await client.call('node', 'NodeGetInfo', {})).toMatchObject({ ok: true, value: { node_id: 'node-7' } });
      expect(await client.call('node', 'NodePublishVolume', { volume_id: 'csi-1' })).toMatchObject({ ok: false, code: status.INVALID_ARGUMENT });
      const page = await (await fetch(agent.metricsUrl!)).text();
      expect(page).toMatch(/^nemutator_agent_csi_operations_total\{operation="NodeGetInfo",result="OK"\} 1$/m);
      expect(page).toMatch(/^nemutator_agent_csi_operations_total\{operation="NodePublishVolume",result="INVALID_ARGUMENT"\} 1$/m);
    } finally {
      client.close();
      await agent.stop();
    }
    expect(existsSync(socket)).toBe(false);
  });

  it('not by default (local mode): no csiSocket, no plugin, nothing listening', async () => {
    expect(agentSchema.csiSocket.default).toBe('');
    const agent = await agentWith({});
    try {
      expect(agent.csi).toBeUndefined();
    } finally {
      await agent.stop();
    }
  });
  it('a part that cannot start stops the ones started before it: the CSI socket is gone when /metrics cannot listen', async () => {
    const busy = createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    const port = (busy.address() as AddressInfo).port;
    const socket = join(dir, 'csi-failed', 'csi.sock');
    try {
      const failed = await agentWith({
        csiSocket: socket,
        csiKubeletDir: join(dir, 'kubelet'),
        socketPath: join(dir, 'run', 'agent.sock'),
        metricsPort: port,
      }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect((failed as NemuError).code).toBe('NEMU_ERR_CONFIG');
      expect((failed as Error).message).toContain('port in use');
      // started before /metrics, stopped by the failed start: its socket file is removed
      expect(existsSync(socket)).toBe(false);
    } finally {
      await new Promise((r) => busy.close(r));
    }
  });
});
