import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { decodeEnvelope, encodeEnvelope } from '#proto/codec.js';

import { buildCgroupTree, containerRelPath, type FixtureTree, updateCounters } from '../test-fixtures/cgroups/tree.ts';
import { ReportCollector, type ReportCollectorOptions } from './report.ts';

const UID_A = 'aaaaaaaa-1111-4222-8333-444455556666';
const UID_B = 'bbbbbbbb-1111-4222-8333-444455556666';
const APP = '1'.repeat(64);
const SIDECAR = '2'.repeat(64);
const SANDBOX = '3'.repeat(64);
const OTHER = '4'.repeat(64);

let root: string;
let nowMs: number;
let tree: FixtureTree;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'nemu-report-'));
  nowMs = 0;
  tree = {
    version: 'v2',
    driver: 'systemd',
    pods: [
      {
        uid: UID_A,
        qos: 'burstable',
        containers: [
          { id: APP, counters: { cpuUsageUsec: 10_000_000, readBytes: 10_000, writeBytes: 20_000 } },
          { id: SIDECAR, counters: { cpuUsageUsec: 1_000_000 } },
          { id: SANDBOX, counters: { cpuUsageUsec: 50_000, pids: [1] } },
        ],
      },
      { uid: UID_B, qos: 'guaranteed', containers: [{ id: OTHER, runtime: 'crio', omit: ['memory.current', 'memory.stat', 'io.stat'] }] },
    ],
  };
  await buildCgroupTree(root, tree);
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

function collector(extra: Partial<ReportCollectorOptions> = {}): ReportCollector {
  return new ReportCollector({ nodeName: 'node-a', cgroupRoot: root, clock: () => nowMs, filesystems: async () => [], ...extra });
}

describe('ReportCollector', () => {
  it('reports every pod and container with its usage; names come from the informer', async () => {
    const names = (uid: string) =>
      uid === UID_A ? { namespace: 'shop', name: 'cart-7d9f', containers: { [APP]: 'app', [SIDECAR]: 'istio-proxy' } } : undefined;
    const report = await collector({ podNames: names }).collect();
    expect(report.nodeName).toBe('node-a');
    expect(report.seq).toBe(1);
    expect(Math.abs(Number(report.timeUnixMs) - Date.now())).toBeLessThan(5_000);
    expect(report.node?.cpuCores).toBeGreaterThan(0);
    const pods = [...(report.pods ?? [])].sort((a, b) => String(a.uid).localeCompare(String(b.uid)));
    expect(pods.map((p) => [p.uid, p.namespace, p.name, p.qos])).toEqual([
      [UID_A, 'shop', 'cart-7d9f', 'burstable'],
      [UID_B, '', '', 'guaranteed'],
    ]);
    const byId = new Map(pods.flatMap((p) => p.containers ?? []).map((c) => [c.id, c]));
    expect(byId.get(APP)).toMatchObject({
      name: 'app',
      runtime: 'containerd',
      cpuUsageSecondsTotal: 10,
      cpuUsageCores: 0,
      memoryUsageBytes: 64 * 1024 * 1024,
      memoryWorkingSetBytes: 48 * 1024 * 1024,
      ioReadBytesTotal: 10_000,
      ioWriteBytesTotal: 20_000,
      processes: 2,
    });
    expect(byId.get(APP)?.cgroupPath).toMatch(
      /^\/kubepods\.slice\/kubepods-burstable\.slice\/kubepods-burstable-podaaaaaaaa_1111_4222_8333_444455556666\.slice\/cri-containerd-1{64}\.scope$/,
    );
    expect(byId.get(SIDECAR)?.name).toBe('istio-proxy');
    // The sandbox is not in the informer's containers: it stays unnamed.
    expect(byId.get(SANDBOX)?.name).toBe('');
    expect(byId.get(OTHER)).toMatchObject({ runtime: 'crio', cpuUsageSecondsTotal: 1.5 });
    // Memory and IO of a cgroup without those controllers are absent, not 0.
    expect(byId.get(OTHER)?.memoryWorkingSetBytes).toBeUndefined();
    expect(byId.get(OTHER)?.ioReadBytesTotal).toBeUndefined();
  });

  it('turns counter increases into cores and bytes per second between collects', async () => {
    const c = collector();
    const first = await c.collect();
    const app = (r: typeof first) => r.pods?.flatMap((p) => p.containers ?? []).find((x) => x.id === APP);
    expect(app(first)).toMatchObject({ cpuUsageCores: 0, ioReadBytesPerSecond: 0, ioWriteBytesPerSecond: 0 });

    nowMs += 10_000;
    const pod = tree.pods[0]!;
    await updateCounters(root, tree, pod, pod.containers[0]!, { cpuUsageUsec: 10_000_000 + 15_000_000, readBytes: 10_000 + 50_000, writeBytes: 20_000 });
    const second = await c.collect();
    expect(second.seq).toBe(2);
    expect(app(second)?.cpuUsageCores).toBeCloseTo(1.5, 10);
    expect(app(second)?.cpuUsageSecondsTotal).toBe(25);
    expect(app(second)?.ioReadBytesPerSecond).toBe(5_000);
    expect(app(second)?.ioWriteBytesPerSecond).toBe(0);
  });

  it('starts rates again from 0 for a container that disappeared and came back', async () => {
    const c = collector();
    await c.collect();
    const pod = tree.pods[0]!;
    await rm(join(root, containerRelPath(tree, pod, pod.containers[0]!)), { recursive: true });
    nowMs += 10_000;
    const without = await c.collect();
    expect(without.pods?.flatMap((p) => p.containers ?? []).some((x) => x.id === APP)).toBe(false);
    // Recreated with a smaller counter (a new cgroup at the same path).
    await updateCounters(root, tree, pod, pod.containers[0]!, { cpuUsageUsec: 100 });
    nowMs += 10_000;
    const back = await c.collect();
    expect(back.pods?.flatMap((p) => p.containers ?? []).find((x) => x.id === APP)?.cpuUsageCores).toBe(0);
  });

  it('measures collectMs and numbers reports in order', async () => {
    const c = collector();
    const seqs: number[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await c.collect();
      seqs.push(Number(r.seq));
      expect(r.collectMs).toBeGreaterThanOrEqual(0);
      expect(r.collectMs).toBeLessThan(5_000);
    }
    expect(seqs).toEqual([1, 2, 3]);
  });

  it('produces a report the fleet link can carry', async () => {
    const report = await collector({ podNames: () => ({ namespace: 'ns', name: 'p', containers: {} }) }).collect();
    const decoded = decodeEnvelope(encodeEnvelope({ report }));
    expect(decoded.report?.pods).toHaveLength(2);
    expect(decoded.report?.node?.cpuCores).toBe(report.node?.cpuCores);
    const app = decoded.report?.pods?.flatMap((p) => p.containers ?? []).find((x) => x.id === APP);
    expect(app?.memoryWorkingSetBytes).toBe(48 * 1024 * 1024);
  });

  it('reports every pod of a busy node (200 pods, 400 containers)', async () => {
    const big = await mkdtemp(join(tmpdir(), 'nemu-report-big-'));
    try {
      const id = (i: number, k: number) => `${k}${i.toString(16)}`.padStart(64, 'a');
      const uidOf = (i: number) => `${i.toString(16).padStart(8, '0')}-1111-4222-8333-444455556666`;
      const pods = Array.from({ length: 200 }, (_, i) => ({
        uid: uidOf(i),
        qos: (['guaranteed', 'burstable', 'besteffort'] as const)[i % 3]!,
        containers: [{ id: id(i, 1) }, { id: id(i, 2) }],
      }));
      await buildCgroupTree(big, { version: 'v2', driver: 'systemd', pods });
      const c = collector({ cgroupRoot: big });
      const report = await c.collect();
      expect(report.pods).toHaveLength(200);
      expect(new Set(report.pods?.map((p) => p.uid)).size).toBe(200);
      expect(report.pods?.every((p) => p.containers?.length === 2 && p.containers.every((x) => x.cpuUsageSecondsTotal === 1.5))).toBe(true);
    } finally {
      await rm(big, { recursive: true, force: true });
    }
  });

  it('reads v1 hierarchies mounted apart (cpu, cpuacct, memory, blkio)', async () => {
    const v1Root = await mkdtemp(join(tmpdir(), 'nemu-report-v1-'));
    try {
      await buildCgroupTree(v1Root, { ...tree, version: 'v1', driver: 'cgroupfs', v1Hierarchies: ['cpu', 'cpuacct', 'memory', 'blkio'] });
      const report = await collector({ cgroupRoot: v1Root }).collect();
      const app = report.pods?.flatMap((p) => p.containers ?? []).find((x) => x.id === APP);
      expect(app).toMatchObject({
        cgroupPath: `/kubepods/burstable/pod${UID_A}/${APP}`,
        cpuUsageSecondsTotal: 10,
        cpuPeriodsTotal: 100,
        memoryWorkingSetBytes: 48 * 1024 * 1024,
        ioReadBytesTotal: 10_000,
      });
    } finally {
      await rm(v1Root, { recursive: true, force: true });
    }
  });

  it.each([
    [{ nodeName: '' }, /nodeName must be a non-empty node name/],
    [{ cgroupRoot: 'sys/fs/cgroup' }, /cgroupRoot must be an absolute path/],
    [{ cgroupRoot: '/does/not/exist' }, /cgroupRoot \/does\/not\/exist does not exist/],
    [{ cgroupVersion: 'v3' as 'v2' }, /cgroupVersion must be one of 'auto', 'v1', 'v2', got "v3"/],
    [{ procRoot: 'proc' }, /procRoot must be an absolute path/],
  ])('refuses bad options at start-up, naming the key: %o', (bad, message) => {
    expect(() => collector(bad)).toThrow(message);
    expect(() => collector(bad)).toThrow(expect.objectContaining({ code: 'NEMU_ERR_CONFIG' }));
  });
});
