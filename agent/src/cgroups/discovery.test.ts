import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { buildCgroupTree, type FixtureDriver, type FixturePod, type FixtureRuntime } from '../../test-fixtures/cgroups/tree.ts';
import { discoverPods, findKubepods } from './discovery.ts';
import { detectCgroupLayout, walkRoot } from './hierarchy.ts';

const id = (n: number): string => n.toString(16).padStart(64, 'c');
const uid = (n: number): string => `${n.toString(16).padStart(8, '0')}-1111-4222-8333-444455556666`;

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'nemu-cg-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

async function discover(cgroupRoot: string, version: 'auto' | 'v1' | 'v2' = 'auto') {
  const layout = detectCgroupLayout(cgroupRoot, version);
  const walk = walkRoot(layout);
  const pods = await discoverPods(walk, await findKubepods(walk));
  return pods.sort((a, b) => a.uid.localeCompare(b.uid));
}

function threePods(runtime: FixtureRuntime): FixturePod[] {
  return [
    {
      uid: uid(1),
      qos: 'guaranteed',
      containers: [
        { id: id(1), runtime },
        { id: id(2), runtime },
      ],
    },
    { uid: uid(2), qos: 'burstable', containers: [{ id: id(3), runtime }] },
    { uid: uid(3), qos: 'besteffort', containers: [{ id: id(4), runtime }] },
  ];
}

describe('pod discovery', () => {
  const layouts: Array<[version: 'v1' | 'v2', driver: FixtureDriver, runtime: FixtureRuntime]> = [
    ['v2', 'systemd', 'containerd'],
    ['v2', 'systemd', 'crio'],
    ['v2', 'systemd', 'docker'],
    ['v2', 'cgroupfs', 'containerd'],
    ['v2', 'cgroupfs', 'crio'],
    ['v1', 'systemd', 'containerd'],
    ['v1', 'systemd', 'crio'],
    ['v1', 'cgroupfs', 'containerd'],
    ['v1', 'cgroupfs', 'crio'],
  ];

  it.each(layouts)('%s, %s driver, %s: finds every pod with its QoS and containers', async (version, driver, runtime) => {
    const tree = { version, driver, pods: threePods(runtime) };
    const paths = await buildCgroupTree(root, tree);
    const pods = await discover(root);
    expect(pods.map((p) => [p.uid, p.qos, p.containers.map((c) => c.id).sort()])).toEqual([
      [uid(1), 'guaranteed', [id(1), id(2)]],
      [uid(2), 'burstable', [id(3)]],
      [uid(3), 'besteffort', [id(4)]],
    ]);
    for (const pod of pods) {
      for (const c of pod.containers) {
        expect(c.relPath).toBe(paths.get(c.id));
        // cgroupfs cannot tell containerd from docker; everything else names its runtime.
        expect(c.runtime).toBe(runtime);
      }
    }
  });

  it('finds pods in v1 when cpu and cpuacct are mounted apart (this kind of host exists)', async () => {
    await buildCgroupTree(root, { version: 'v1', driver: 'systemd', pods: threePods('containerd'), v1Hierarchies: ['cpu', 'cpuacct', 'memory', 'blkio'] });
    expect((await discover(root)).map((p) => p.uid)).toEqual([uid(1), uid(2), uid(3)]);
  });

  it('leaves out CRI-O conmon scopes', async () => {
    await buildCgroupTree(root, {
      version: 'v2',
      driver: 'systemd',
      pods: [{ uid: uid(9), qos: 'burstable', conmon: true, containers: [{ id: id(9), runtime: 'crio' }] }],
    });
    const [pod] = await discover(root);
    expect(pod?.containers.map((c) => c.id)).toEqual([id(9)]);
  });

  it('reports a pod whose containers have not started yet, with no containers', async () => {
    await buildCgroupTree(root, { version: 'v2', driver: 'systemd', pods: [{ uid: uid(5), qos: 'besteffort', containers: [] }] });
    expect(await discover(root)).toEqual([expect.objectContaining({ uid: uid(5), qos: 'besteffort', containers: [] })]);
  });

  it('finds kubepods below kubelet.slice (kind, --cgroup-root)', async () => {
    await buildCgroupTree(root, { version: 'v2', driver: 'systemd', parent: 'kubelet.slice', pods: threePods('containerd') });
    const pods = await discover(root);
    expect(pods.map((p) => p.qos)).toEqual(['guaranteed', 'burstable', 'besteffort']);
    expect(pods[1]?.containers[0]?.relPath).toMatch(/^\/kubelet\.slice\/kubelet-kubepods\.slice\/kubelet-kubepods-burstable\.slice\//);
  });

  it('finds nothing, without error, on a host with no kubelet', async () => {
    await buildCgroupTree(root, { version: 'v2', driver: 'systemd', pods: [] });
    expect(await discover(root)).toEqual([]);
    expect(await discover(join(root, 'does-not-exist'), 'v2')).toEqual([]);
  });

  it('honours an explicit version over detection', async () => {
    await buildCgroupTree(root, { version: 'v1', driver: 'cgroupfs', pods: threePods('containerd') });
    expect(detectCgroupLayout(root, 'auto').version).toBe('v1');
    // Asked for v2, the same root has no kubepods at its top: nothing, and no crash.
    expect(await discover(root, 'v2')).toEqual([]);
  });

  it('refuses a root that is neither v1 nor v2, naming the key', () => {
    expect(() => detectCgroupLayout(root, 'auto')).toThrow(
      expect.objectContaining({ code: 'NEMU_ERR_CONFIG', message: expect.stringContaining(`cgroupRoot ${root}`) }),
    );
  });
});
