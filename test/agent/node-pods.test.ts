// The agent's view of the pods of its node, from a Kubernetes API (the double), through the
// same informer code it runs in a cluster.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { KubeApi } from '#agent/kube/api.js';
import { containerIdOf, NodePods } from '#agent/kube/pods.js';
import { silentLogger } from '#common/log.js';

import { type KubeDouble, startKubeDouble } from '../harness/kube/index.ts';
import { until } from '../harness/wait.ts';

let kube: KubeDouble;
beforeAll(async () => {
  kube = await startKubeDouble({ nodes: ['node-1', 'node-2'] });
});
afterAll(() => kube.stop());

const pod = (name: string, node: string) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: 'default' },
  spec: {
    nodeName: node,
    containers: [
      { name: 'app', image: 'busybox' },
      { name: 'sidecar', image: 'busybox' },
    ],
  },
});

describe('pods of this node', () => {
  it('sees only its own node, names containers by runtime id, and follows deletions and dropped watches', async () => {
    const pods = new NodePods(KubeApi.load(kube.kubeconfigPath)!, 'node-1', silentLogger, 50);
    await pods.start();
    try {
      const mine = await kube.create(pod('mine', 'node-1'));
      await kube.create(pod('theirs', 'node-2'));
      const uid = mine.metadata!.uid as string;
      // The kubelet stand-in reports container ids; the informer picks them up.
      const names = await until('container names', () => {
        const n = pods.names(uid);
        return n && Object.keys(n.containers).length === 2 ? n : undefined;
      });
      expect(names.namespace).toBe('default');
      expect(names.name).toBe('mine');
      expect(Object.values(names.containers).sort()).toEqual(['app', 'sidecar']);
      expect(pods.list().map((p) => p.metadata?.name)).toEqual(['mine']);

      kube.dropWatches('reset');
      await kube.create(pod('after-drop', 'node-1'));
      await until('a pod created after the watch dropped', () => pods.list().find((p) => p.metadata?.name === 'after-drop'));

      await kube.delete('pods', 'default', 'mine');
      await until('the deletion', () => (pods.get(uid) === undefined ? true : undefined));

      // History compacted while the watch is down: the resume gets 410 Gone and the agent lists again.
      kube.compact();
      kube.dropWatches('reset');
      await kube.create(pod('after-compaction', 'node-1'));
      await until('a pod created after a 410', () => pods.list().find((p) => p.metadata?.name === 'after-compaction'));
      expect(pods.hasSynced).toBe(true);
    } finally {
      await pods.stop();
    }
  });

  it('strips the runtime prefix of container ids', () => {
    expect(containerIdOf('containerd://abc')).toBe('abc');
    expect(containerIdOf('cri-o://def')).toBe('def');
    expect(containerIdOf(undefined)).toBeUndefined();
  });
});
