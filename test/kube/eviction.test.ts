// Eviction in the Kubernetes double: the pods/eviction subresource consults
// PodDisruptionBudgets like kube-apiserver (429 TooManyRequests when a budget would be
// broken, 201 otherwise), and the ReplicaSet controller replaces what was evicted.
import { CoreV1Api, KubeConfig, PolicyV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type KubeDouble, startKubeDouble } from '../harness/kube/index.ts';
import { kubectlFor, type KubectlRunner } from '../harness/kube/kubectl.ts';

let kube: KubeDouble;
let k: KubectlRunner;
let core: CoreV1Api;
let policy: PolicyV1Api;
const NS = 'ev';

const podNames = async (selector: string): Promise<string[]> =>
  ((await core.listNamespacedPod({ namespace: NS, labelSelector: selector })).items ?? [])
    .filter((p) => p.status?.phase === 'Running')
    .map((p) => p.metadata!.name!)
    .sort();
const evict = (name: string) =>
  core.createNamespacedPodEviction({ namespace: NS, name, body: { apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name, namespace: NS } } });

beforeAll(async () => {
  kube = await startKubeDouble();
  k = kubectlFor(kube.kubeconfigPath);
  const kc = new KubeConfig();
  kc.loadFromFile(kube.kubeconfigPath);
  core = kc.makeApiClient(CoreV1Api);
  policy = kc.makeApiClient(PolicyV1Api);
  await k(['create', 'namespace', NS]);
  await k(['apply', '-f', '-'], {
    stdin: {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'api', namespace: NS },
      spec: {
        replicas: 2,
        selector: { matchLabels: { app: 'api' } },
        template: { metadata: { labels: { app: 'api' } }, spec: { containers: [{ name: 'c', image: 'busybox:1.36' }] } },
      },
    },
  });
  await k(['apply', '-f', '-'], {
    stdin: {
      apiVersion: 'policy/v1',
      kind: 'PodDisruptionBudget',
      metadata: { name: 'api', namespace: NS },
      spec: { minAvailable: 2, selector: { matchLabels: { app: 'api' } } },
    },
  });
});
afterAll(async () => {
  await kube?.stop();
});

describe('eviction and PodDisruptionBudgets', () => {
  it('the disruption controller keeps the PDB status current', async () => {
    await expect
      .poll(async () => (await policy.readNamespacedPodDisruptionBudget({ namespace: NS, name: 'api' })).status, { timeout: 10_000 })
      .toMatchObject({
        currentHealthy: 2,
        desiredHealthy: 2,
        expectedPods: 2,
        disruptionsAllowed: 0,
      });
  });

  it('an eviction that would break the budget is 429 TooManyRequests', async () => {
    const [victim] = await podNames('app=api');
    const err = await evict(victim!).then(
      () => undefined,
      (e: { code?: number; body?: string }) => e,
    );
    expect(err?.code).toBe(429);
    expect(JSON.parse(err!.body!)).toEqual({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: "Cannot evict pod as it would violate the pod's disruption budget.",
      reason: 'TooManyRequests',
      details: { causes: [{ reason: 'DisruptionBudget', message: 'The disruption budget api needs 2 healthy pods and has 2 currently' }] },
      code: 429,
    });
    expect(await podNames('app=api')).toContain(victim);
  });

  it('kubectl drain is held back by the budget', async () => {
    // drain retries every 5 s until its timeout; the first refusal is all this test needs.
    const drain = k.spawn(['drain', 'node-1', '--ignore-daemonsets', '--timeout=20s', '--pod-selector=app=api']);
    let out = '';
    drain.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    drain.stderr!.on('data', (c: Buffer) => (out += c.toString()));
    try {
      await expect.poll(() => out, { timeout: 10_000 }).toContain("Cannot evict pod as it would violate the pod's disruption budget.");
      expect(out).toContain('node/node-1 cordoned');
    } finally {
      drain.kill();
    }
    expect(await k(['uncordon', 'node-1'])).toBe('node/node-1 uncordoned\n');
  });

  it('with room in the budget the eviction is 201, and the ReplicaSet replaces the pod', async () => {
    await k(['-n', NS, 'patch', 'pdb', 'api', '--type=merge', '-p', '{"spec":{"minAvailable":1}}']);
    await expect.poll(async () => (await policy.readNamespacedPodDisruptionBudget({ namespace: NS, name: 'api' })).status?.disruptionsAllowed).toBe(1);
    const before = await podNames('app=api');
    await evict(before[0]!);
    expect(kube.requests.filter((r) => r.path.endsWith(`/pods/${before[0]}/eviction`)).at(-1)?.status).toBe(201);
    await expect.poll(async () => (await podNames('app=api')).length, { timeout: 10_000 }).toBe(2);
    const after = await podNames('app=api');
    expect(after).not.toContain(before[0]);
    expect(after).toContain(before[1]);
  });

  it('pods that are not running are evicted without consulting budgets; two budgets are an error', async () => {
    await k(['-n', NS, 'patch', 'pdb', 'api', '--type=merge', '-p', '{"spec":{"minAvailable":"100%"}}']);
    // A scheduling gate keeps the pod Pending.
    await core.createNamespacedPod({
      namespace: NS,
      body: {
        metadata: { name: 'gated', labels: { app: 'api' } },
        spec: { schedulingGates: [{ name: 'example.com/hold' }], containers: [{ name: 'c', image: 'busybox:1.36' }] },
      },
    });
    await evict('gated');
    await expect(core.readNamespacedPod({ namespace: NS, name: 'gated' })).rejects.toMatchObject({ code: 404 });

    await k(['apply', '-f', '-'], {
      stdin: {
        apiVersion: 'policy/v1',
        kind: 'PodDisruptionBudget',
        metadata: { name: 'second', namespace: NS },
        spec: { maxUnavailable: 1, selector: { matchLabels: { app: 'api' } } },
      },
    });
    const [pod] = await podNames('app=api');
    await expect(evict(pod!)).rejects.toMatchObject({
      code: 500,
      body: expect.stringContaining('This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.'),
    });
    await expect(evict('no-such-pod')).rejects.toMatchObject({ code: 404 });
  });

  it('evicting needs create on pods/eviction', async () => {
    const token = await kube.issueToken({ namespace: NS, serviceAccount: 'rollbacker' });
    const [pod] = await podNames('app=api');
    const kc = new KubeConfig();
    kc.loadFromString(kube.kubeconfigYaml.replace(kube.adminToken, token));
    const asSa = kc.makeApiClient(CoreV1Api);
    const err = await asSa.createNamespacedPodEviction({ namespace: NS, name: pod!, body: { metadata: { name: pod!, namespace: NS } } }).then(
      () => undefined,
      (e: { code?: number; body?: string }) => e,
    );
    expect(err?.code).toBe(403);
    expect(JSON.parse(err!.body!).message).toBe(
      `pods "${pod}" is forbidden: User "system:serviceaccount:${NS}:rollbacker" cannot create resource "pods/eviction" in API group "" in the namespace "${NS}"`,
    );
  });
});
