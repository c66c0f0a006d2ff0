// What the extender's scores do to placements, with agents reporting through the real fleet
// link (WebSocket + protobuf NodeReports) and kube-scheduler's requests over the real HTTPS
// listener: peak spreads, off-peak packs, familiars push a workload apart, and a burst of
// pods between two reports does not herd onto one node. The pod is the one kube-scheduler
// sends in test/fixtures/scheduler (500m / 256Mi, owned by ReplicaSet web-7d4b9c6f5 of
// Deployment shop/web).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

import { DEFAULT_WEIGHTS } from '#controller/scheduler/score.js';
import type { INodeReport } from '#proto/codec.js';

import { type KubeDouble, startKubeDouble } from '../harness/kube/index.ts';
import { type ExtenderRig, startExtenderRig } from '../harness/scheduler.ts';

const GiB = 2 ** 30;
const args = JSON.parse(readFileSync(join(import.meta.dirname, '../fixtures/scheduler/args-nodenames.json'), 'utf8')) as {
  Pod: { metadata: Record<string, unknown> };
  NodeNames: string[];
};

/** The fixture's pod under another name, asking about `nodes`. */
function ask(nodes: string[], podName = args.Pod.metadata.name as string): object {
  return { ...args, Pod: { ...args.Pod, metadata: { ...args.Pod.metadata, name: podName, uid: `uid-${podName}` } }, NodeNames: nodes };
}

type PodReport = NonNullable<INodeReport['pods']>[number];

/** A node of `cores` cores and 4 GiB a core, using `cpu` cores and `memGiB` GiB, running `pods`. */
const node =
  (cpu: number, memGiB: number, pods: PodReport[] = [], cores = 4) =>
  (): Partial<INodeReport> => ({
    node: { cpuCores: cores, cpuUsageCores: cpu, memoryTotalBytes: cores * 4 * GiB, memoryUsedBytes: memGiB * GiB },
    pods,
  });

const replica = (suffix: string): PodReport => ({
  uid: `uid-web-${suffix}`,
  namespace: 'shop',
  name: `web-7d4b9c6f5-${suffix}`,
  qos: 'burstable',
  containers: [{ name: 'web', cpuUsageCores: 0.1, memoryWorkingSetBytes: 200 * 2 ** 20 }],
});
const stranger = (suffix: string): PodReport => ({ ...replica(suffix), uid: `uid-db-${suffix}`, name: `db-${suffix}` });

async function scores(rig: ExtenderRig, body: object): Promise<Record<string, number>> {
  const r = await rig.call('prioritize', body);
  expect(r.status).toBe(200);
  return Object.fromEntries((r.json() as Array<{ Host: string; Score: number }>).map((h) => [h.Host, h.Score]));
}

describe('scheduler extender behaviour', () => {
  let rig: ExtenderRig | undefined;
  let kube: KubeDouble | undefined;
  afterEach(async () => {
    await rig?.stop();
    await kube?.stop();
    rig = kube = undefined;
  });

  it('at peak, of two otherwise equal nodes the less loaded scores higher', async () => {
    rig = await startExtenderRig({ schedulerSeason: 'peak' });
    await rig.agent('node-a', node(3, 8));
    await rig.agent('node-b', node(1, 8));
    const s = await scores(rig, ask(['node-a', 'node-b']));
    expect(s['node-b']).toBeGreaterThan(s['node-a']!);
  });

  it('off-peak, the fuller node that still fits the pod scores higher than the emptier one, and one that does not fit scores lowest', async () => {
    rig = await startExtenderRig({ schedulerSeason: 'offpeak' });
    // Just under the CPU headroom with the pod's 0.5 core on it; node-over is past it.
    await rig.agent('node-full', node(DEFAULT_WEIGHTS.headroomCpu * 4 - 0.5 - 0.2, 6));
    await rig.agent('node-empty', node(0.4, 2));
    await rig.agent('node-over', node(3.2, 6));
    const s = await scores(rig, ask(['node-full', 'node-empty', 'node-over']));
    expect(s['node-full']).toBeGreaterThan(s['node-empty']!);
    expect(s['node-empty']).toBeGreaterThan(s['node-over']!);
  });

  it('a node already running three replicas of the Deployment scores lower for a fourth than an equal node without them', async () => {
    rig = await startExtenderRig({ schedulerSeason: 'peak' });
    await rig.agent('node-a', node(1, 4, [replica('aaaaa'), replica('bbbbb'), replica('ccccc')]));
    await rig.agent('node-b', node(1, 4, [stranger('aaaaa'), stranger('bbbbb'), stranger('ccccc')]));
    const s = await scores(rig, ask(['node-a', 'node-b']));
    expect(s['node-a']).toBeLessThan(s['node-b']!);
  });

  it('familiars come from the pods bound to the node in the cluster when there is one (owner ReplicaSet → Deployment)', async () => {
    kube = await startKubeDouble();
    for (const n of ['node-a', 'node-b'])
      kube.put({ apiVersion: 'v1', kind: 'Node', metadata: { name: n }, status: { allocatable: { cpu: '4', memory: '16Gi', pods: '110' } } });
    kube.put({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web', namespace: 'shop' }, spec: {} });
    kube.put({
      apiVersion: 'apps/v1',
      kind: 'ReplicaSet',
      metadata: {
        name: 'web-7d4b9c6f5',
        namespace: 'shop',
        ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', uid: 'd1', controller: true }],
      },
      spec: {},
    });
    for (const i of [1, 2, 3])
      kube.put({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          name: `replica-${i}`,
          namespace: 'shop',
          ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-7d4b9c6f5', uid: 'r1', controller: true }],
        },
        spec: { nodeName: 'node-a', containers: [{ name: 'web', resources: { requests: { cpu: '500m', memory: '256Mi' } } }] },
        status: { phase: 'Running' },
      });
    rig = await startExtenderRig({ schedulerSeason: 'peak', kubeconfig: kube.kubeconfigPath }, { features: true });
    // The agents see no pods by name: what the node runs comes from the cluster's objects.
    await rig.agent('node-a', node(1, 4));
    await rig.agent('node-b', node(1, 4));
    const s = await scores(rig, ask(['node-a', 'node-b']));
    expect(s['node-a']).toBeLessThan(s['node-b']!);
  });

  it('a burst of 20 pods scored within one report interval spreads over the nodes instead of all picking the one that looked emptiest', async () => {
    rig = await startExtenderRig({ schedulerSeason: 'peak' });
    const nodes = ['node-a', 'node-b', 'node-c'];
    // node-a looks a little emptier: without anti-herding every pod of the burst would pick it.
    // Three 8-core nodes: the burst's 10 cores fit in the cluster (about half full after it).
    await rig.agent('node-a', node(0.5, 4, [], 8));
    await rig.agent('node-b', node(1.5, 4, [], 8));
    await rig.agent('node-c', node(1.5, 4, [], 8));
    const reportsBefore = nodes.map((n) => rig!.c.registry.get(n)!.reports);

    // Control: the same pod asked 20 times adds nothing (a retry replaces its own placement), so it picks node-a each time.
    for (let i = 0; i < 20; i++) {
      const s = await scores(rig, ask(nodes, 'web-7d4b9c6f5-retry'));
      expect(Object.entries(s).sort((x, y) => y[1] - x[1])[0]![0]).toBe('node-a');
    }

    const picks: Record<string, number> = {};
    for (let i = 0; i < 20; i++) {
      const s = await scores(rig, ask(nodes, `web-7d4b9c6f5-burst${String(i).padStart(2, '0')}`));
      const best = Math.max(...Object.values(s));
      // kube-scheduler takes a highest-scored node; ties are broken at random — take the first.
      const pick = nodes.find((n) => s[n] === best)!;
      picks[pick] = (picks[pick] ?? 0) + 1;
    }
    expect(nodes.map((n) => rig!.c.registry.get(n)!.reports)).toEqual(reportsBefore);
    expect(Object.keys(picks).length).toBe(3);
    expect(Math.max(...Object.values(picks))).toBeLessThanOrEqual(10);
  });
});
