// @kubernetes/client-node 1.x informers against the Kubernetes double: they list, watch,
// resume after a dropped connection from their last resourceVersion, and relist after a
// forced 410 Gone — the paths Nemutator's cluster model depends on.
import { AppsV1Api, CoreV1Api, type Informer, KubeConfig, type ListWatch, makeInformer, type V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type KubeDouble, startKubeDouble } from '../harness/kube/index.ts';

let kube: KubeDouble;
let kc: KubeConfig;
let core: CoreV1Api;
const NS = 'inf';

const pod = (name: string, labels: Record<string, string> = {}): V1Pod => ({
  metadata: { name, labels: { app: 'inf', ...labels } },
  spec: { containers: [{ name: 'c', image: 'busybox:1.36' }] },
});

interface Recorder {
  informer: Informer<V1Pod>;
  events: string[];
  errors: unknown[];
  names(): string[];
}

/** An informer that, like a controller should, restarts itself after an error. */
async function podInformer(namespace: string, labelSelector?: string): Promise<Recorder> {
  const informer = makeInformer<V1Pod>(kc, `/api/v1/namespaces/${namespace}/pods`, () => core.listNamespacedPod({ namespace, labelSelector }), labelSelector);
  const events: string[] = [];
  const errors: unknown[] = [];
  informer.on('add', (p) => events.push(`add ${p.metadata?.name}`));
  informer.on('update', (p) => events.push(`update ${p.metadata?.name} ${p.metadata?.labels?.['step'] ?? ''}`.trim()));
  informer.on('delete', (p) => events.push(`delete ${p.metadata?.name}`));
  informer.on('error', (err) => {
    errors.push(err);
    setTimeout(() => void informer.start(), 300);
  });
  await informer.start();
  return {
    informer,
    events,
    errors,
    names: () =>
      informer
        .list(namespace)
        .map((p) => p.metadata?.name ?? '')
        .sort(),
  };
}

// makeInformer returns a ListWatch; its typed interface hides the resourceVersion it resumes from.
const resourceVersionOf = (informer: Informer<V1Pod>): string => (informer as unknown as ListWatch<V1Pod>).latestResourceVersion();
const watchRequests = (ns = NS): string[] =>
  kube.requests.filter((r) => r.path.startsWith(`/api/v1/namespaces/${ns}/pods?`) && r.path.includes('watch=true')).map((r) => r.path);
const listRequests = (ns = NS): number =>
  kube.requests.filter((r) => r.path.startsWith(`/api/v1/namespaces/${ns}/pods`) && !r.path.includes('watch=true') && r.method === 'GET').length;

/** A namespace of the test's own holding these pods, so the test runs alone as well as in order. */
async function namespaceWith(ns: string, pods: string[]): Promise<string> {
  await core.createNamespace({ body: { metadata: { name: ns } } });
  for (const name of pods) await core.createNamespacedPod({ namespace: ns, body: pod(name) });
  return ns;
}

beforeAll(async () => {
  kube = await startKubeDouble();
  kc = new KubeConfig();
  kc.loadFromFile(kube.kubeconfigPath);
  core = kc.makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: NS } } });
});
afterAll(async () => {
  await kube?.stop();
});

describe('client-node informers against the Kubernetes double', () => {
  it('list, then watch: adds, updates and deletes arrive in order', async () => {
    await core.createNamespacedPod({ namespace: NS, body: pod('before') });
    const r = await podInformer(NS);
    try {
      expect(r.names()).toEqual(['before']);
      await core.createNamespacedPod({ namespace: NS, body: pod('after') });
      await core.patchNamespacedPod({ namespace: NS, name: 'after', body: [{ op: 'add', path: '/metadata/labels/step', value: 'two' }] });
      await core.deleteNamespacedPod({ namespace: NS, name: 'before' });
      await expect.poll(() => r.names()).toEqual(['after']);
      expect(r.events[0]).toBe('add before');
      expect(r.events).toContain('update after two');
      expect(r.events.indexOf('add after')).toBeLessThan(r.events.indexOf('update after two'));
      expect(r.events.at(-1)).toBe('delete before');
      expect(r.errors).toEqual([]);
    } finally {
      await r.informer.stop();
    }
  });

  it('a watch closed by the server is resumed from the last resourceVersion, without a relist', async () => {
    const r = await podInformer(NS);
    try {
      const lists = listRequests();
      const rvBefore = resourceVersionOf(r.informer);
      expect(kube.dropWatches('end')).toBeGreaterThan(0);
      await core.createNamespacedPod({ namespace: NS, body: pod('during-end') });
      await expect.poll(() => r.names()).toContain('during-end');
      expect(listRequests()).toBe(lists);
      expect(watchRequests().some((p) => p.includes(`resourceVersion=${rvBefore}`))).toBe(true);
    } finally {
      await r.informer.stop();
    }
  });

  it('a dropped connection surfaces as an error; the restarted informer catches up on what it missed', async () => {
    const ns = await namespaceWith(`${NS}-reset`, ['during-end', 'after']);
    const r = await podInformer(ns);
    try {
      const rvBefore = resourceVersionOf(r.informer);
      expect(kube.dropWatches('reset')).toBeGreaterThan(0);
      // Written while the informer is disconnected (it restarts 300 ms after the error).
      await core.createNamespacedPod({ namespace: ns, body: pod('during-reset') });
      await core.deleteNamespacedPod({ namespace: ns, name: 'after' });
      await expect.poll(() => r.errors.length).toBeGreaterThan(0);
      await expect.poll(() => r.names(), { timeout: 5000 }).toEqual(['during-end', 'during-reset']);
      expect(r.events).toContain('add during-reset');
      expect(r.events).toContain('delete after');
      // It resumed from where it was, so history was replayed rather than relisted.
      expect(watchRequests(ns).filter((p) => p.includes(`resourceVersion=${rvBefore}`)).length).toBeGreaterThanOrEqual(2);
    } finally {
      await r.informer.stop();
    }
  });

  it('a forced 410 Gone makes the informer relist and reconcile what changed meanwhile', async () => {
    const ns = await namespaceWith(`${NS}-gone`, ['during-end', 'during-reset']);
    const r = await podInformer(ns, 'app=inf');
    try {
      const lists = listRequests(ns);
      const rvBefore = resourceVersionOf(r.informer);
      kube.dropWatches('reset');
      await core.createNamespacedPod({ namespace: ns, body: pod('after-compaction') });
      await core.deleteNamespacedPod({ namespace: ns, name: 'during-end' });
      kube.compact(); // the informer's resourceVersion is now too old to resume from
      const mark = kube.requests.length;
      await expect.poll(() => r.names(), { timeout: 5000 }).toEqual(['after-compaction', 'during-reset']);
      expect(r.events).toContain('add after-compaction');
      expect(r.events).toContain('delete during-end');
      // It tried to resume from its old version, got 200 + an ERROR 410 Expired event (as from
      // the watch cache), and relisted: client-node only relists after a 410.
      const after = kube.requests.slice(mark).map((q) => q.path);
      expect(after.some((p) => p.includes('watch=true') && p.includes(`resourceVersion=${rvBefore}`))).toBe(true);
      expect(listRequests(ns)).toBeGreaterThan(lists);
    } finally {
      await r.informer.stop();
    }
  });

  it('a Deployment informer sees the controller roll out replica counts', async () => {
    const apps = kc.makeApiClient(AppsV1Api);
    const informer = makeInformer(kc, `/apis/apps/v1/namespaces/${NS}/deployments`, () => apps.listNamespacedDeployment({ namespace: NS }));
    const ready: number[] = [];
    informer.on('update', (d) => ready.push(d.status?.readyReplicas ?? 0));
    await informer.start();
    try {
      await apps.createNamespacedDeployment({
        namespace: NS,
        body: {
          metadata: { name: 'api' },
          spec: {
            replicas: 2,
            selector: { matchLabels: { app: 'api' } },
            template: { metadata: { labels: { app: 'api' } }, spec: { containers: [{ name: 'c', image: 'busybox:1.36' }] } },
          },
        },
      });
      await expect.poll(() => ready.at(-1)).toBe(2);
      const d = informer.get('api', NS);
      expect(d?.status).toMatchObject({ replicas: 2, updatedReplicas: 2, availableReplicas: 2, observedGeneration: 1 });
    } finally {
      await informer.stop();
    }
  });
});
