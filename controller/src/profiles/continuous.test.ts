import { describe, expect, it } from 'vitest';

import { silentLogger } from '#common/log.js';

import { FleetRegistry } from '../fleet/registry.ts';
import { ContinuousProfiler } from './continuous.ts';
import type { StoredProfile } from './model.ts';
import type { CaptureSpec } from './service.ts';
import type { ProfileStore } from './store.ts';

function setup(opts: { leader?: boolean } = {}) {
  let now = 1_000_000;
  const registry = new FleetRegistry(30_000, () => now);
  registry.connected('n1', { agentVersion: 't', instanceId: 'i', capabilities: ['profile'] });
  registry.report('n1', {
    nodeName: 'n1',
    pods: [
      { uid: 'u1', namespace: 'shop', name: 'go-api', containers: [] },
      { uid: 'u2', namespace: 'shop', name: 'nginx', containers: [] },
    ],
  });
  const calls: Array<{ spec: CaptureSpec; mode: string }> = [];
  const service = {
    async capture(spec: CaptureSpec, _user: unknown, mode: StoredProfile['mode'] = 'on-demand') {
      calls.push({ spec, mode });
      const isGo = spec.pod === 'go-api';
      return {
        data: { processes: [{ pid: 1, exe: '/app', isGo, goVersion: '', modulePath: '', stripped: false, container: '' }] },
      } as unknown as StoredProfile;
    },
  };
  const profiler = new ContinuousProfiler({
    service,
    store: {} as ProfileStore,
    registry,
    log: silentLogger,
    intervalMs: 600_000,
    seconds: 10,
    hz: 19,
    minAgeMs: 3_600_000,
    isLeader: () => opts.leader ?? true,
    clock: () => now,
  });
  return { profiler, calls, advance: (ms: number) => (now += ms) };
}

describe('continuous profiling', () => {
  it('captures pods older than the threshold at the low rate, and stops probing pods without Go', async () => {
    const { profiler, calls, advance } = setup();
    await profiler.tick();
    expect(calls).toEqual([]); // first seen now: too young
    advance(3_600_000);
    await profiler.tick();
    expect(calls.map((c) => [c.spec.pod, c.spec.seconds, c.spec.hz, c.mode])).toEqual([
      ['go-api', 10, 19, 'continuous'],
      ['nginx', 10, 19, 'continuous'],
    ]);
    calls.length = 0;
    advance(600_000);
    await profiler.tick();
    expect(calls.map((c) => c.spec.pod)).toEqual(['go-api']);
  });

  it('does nothing on a replica that is not the leader', async () => {
    const { profiler, calls, advance } = setup({ leader: false });
    advance(10 * 3_600_000);
    await profiler.tick();
    await profiler.tick();
    expect(calls).toEqual([]);
  });
});
