// What a user sees when the profile is not of a Go program, or when the node cannot profile:
// bpftrace missing, or run without privileges. Real processes, real bpftrace, real agent.
import { chmodSync, mkdtempSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { startAgent } from '#agent/app.js';
import { agentSchema } from '#agent/config.js';
import { capture } from '#agent/profiler/capture.js';
import { loadConfig } from '#common/config.js';
import { silentLogger } from '#common/log.js';
import { startController } from '#controller/app.js';
import { SharedTokenAgentAuthenticator } from '#controller/fleet/auth.js';
import { registerProfiles } from '#controller/profiles/index.js';
import { localAuthorizer } from '#controller/server/access.js';
import { StaticTokenAuthenticator } from '#controller/server/auth.js';

import { createPodCgroup, type PodCgroup, spawnInCgroup } from '../harness/cgroup.ts';
import { testControllerConfig } from '../harness/controller.ts';
import { buildGo } from '../harness/golang.ts';
import { requireTool } from '../harness/tools.ts';
import { until } from '../harness/wait.ts';
import { HOTLOOP } from './hotloop.ts';

const cgroups: PodCgroup[] = [];
afterAll(async () => {
  for (const cg of cgroups) await cg.cleanup();
});

describe('non-Go processes', () => {
  it('are profiled and marked as such; a Go process in the same container is still recognised', { timeout: 60_000 }, async () => {
    requireTool('bpftrace', 'bpftrace');
    const cg = await createPodCgroup();
    cgroups.push(cg);
    const shell = spawnInCgroup(cg, '/bin/sh', ['-c', 'while :; do :; done'], { stdio: 'ignore' });
    const goBin = await buildGo(HOTLOOP);
    const go = spawnInCgroup(cg, goBin, ['-seconds', '30'], { stdio: 'ignore' });
    // Both have exec'd their programs inside the container's cgroup.
    const exe = (pid: number) => {
      try {
        return readlinkSync(`/proc/${pid}/exe`);
      } catch {
        return '';
      }
    };
    await until(
      'the shell and the Go program run in the pod cgroup',
      () =>
        exe(go.pid!) === goBin &&
        /(dash|bash|sh)$/.test(exe(shell.pid!)) &&
        readFileSync(join(cg.containerDir, 'cgroup.procs'), 'utf8').split('\n').includes(String(go.pid)),
    );
    const r = await capture({ target: { podUid: cg.podUid }, seconds: 2, hz: 49 }, { bpftracePath: 'bpftrace', cgroupRoot: cg.root });
    const sh = r.processes.find((p) => p.pid === shell.pid)!;
    expect(sh).toMatchObject({ isGo: false, goVersion: '' });
    expect(sh.exe).toMatch(/(dash|bash|sh)$/);
    expect(r.processes.find((p) => p.pid === go.pid)).toMatchObject({ isGo: true });
    expect(r.warnings).toContain(`pid ${shell.pid} (${sh.exe}) is not a Go program: profiled with native symbols only`);
    const shellSamples = r.samples.filter((s) => s.pid === shell.pid);
    expect(shellSamples.reduce((a, s) => a + s.count, 0)).toBeGreaterThan(0);
    // Its frames come from bpftrace's symbols or are addresses in their mapping: never Go frames.
    const kinds = new Set(shellSamples.flatMap((s) => s.frames.map((i) => r.frames[i]!.kind)));
    expect(kinds.has('go')).toBe(false);
  });
});

describe('a node that cannot profile', () => {
  it('without bpftrace: the API answers 503 NEMU_ERR_PROFILER_NO_BPFTRACE saying how to install it', { timeout: 60_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nemu-nobpf-'));
    const config = testControllerConfig({ stateDir: dir });
    const controller = await startController(config, {
      log: silentLogger,
      mode: 'local',
      apiAuth: new StaticTokenAuthenticator('admin'),
      authorizer: localAuthorizer,
      agentAuth: new SharedTokenAgentAuthenticator('agent'),
      routes: (router, parts) => void registerProfiles(router, parts),
    });
    const agent = await startAgent(
      {
        ...loadConfig(agentSchema, { program: 'agent', argv: [], env: {} }).config,
        nodeName: 'n1',
        controllerUrl: controller.fleetUrl,
        metricsPort: 0,
        bpftracePath: '/opt/missing/bpftrace',
      },
      { log: silentLogger, token: () => 'agent', ca: controller.tls.caPem, metrics: false },
    );
    try {
      await until('the agent connects', () => controller.registry.get('n1')?.connected, 10_000, 50);
      const res = await fetch(`${controller.apiUrl}/profiles`, {
        method: 'POST',
        headers: { authorization: 'Bearer admin', 'content-type': 'application/json' },
        body: JSON.stringify({ pid: process.pid, seconds: 1 }),
      });
      expect(res.status).toBe(503);
      const body = (await res.json()) as { code: string; message: string };
      expect(body.code).toBe('NEMU_ERR_PROFILER_NO_BPFTRACE');
      expect(body.message).toBe(
        'the agent on n1: bpftrace not found (bpftracePath = /opt/missing/bpftrace); install it (Debian/Ubuntu: apt-get install bpftrace; the agent image ships it) or set the agent key bpftracePath',
      );
    } finally {
      await agent.stop();
      await controller.stop();
    }
  });

  it('bpftrace without privileges: NEMU_ERR_PROFILER_PERMISSION, not a bare exit code', { timeout: 60_000 }, async () => {
    const bpftrace = requireTool('bpftrace', 'bpftrace');
    const setpriv = requireTool('setpriv', 'util-linux');
    const dir = mkdtempSync(join(tmpdir(), 'nemu-unpriv-'));
    const wrapper = join(dir, 'bpftrace-as-nobody');
    writeFileSync(wrapper, `#!/bin/sh\nexec ${setpriv} --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all ${bpftrace} "$@"\n`);
    chmodSync(wrapper, 0o755);
    const err = await capture({ target: { pid: process.pid }, seconds: 1, hz: 49 }, { bpftracePath: wrapper, cgroupRoot: '/sys/fs/cgroup' }).catch(
      (e: Error & { code?: string }) => e,
    );
    expect((err as { code?: string }).code).toBe('NEMU_ERR_PROFILER_PERMISSION');
    expect((err as Error).message).toMatch(
      /lacks the privileges to load BPF programs.*bpftrace said: ERROR: bpftrace currently only supports running as the root user/,
    );
  });
});
