// The Kubernetes API server double, driven by the real kubectl 1.32: discovery, create,
// apply (client-side; server-side gets a clear 415), patch, label, replace conflicts,
// selectors, watch, delete with garbage collection, rollouts, impersonation and RBAC.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type KubeDouble, startKubeDouble } from '../harness/kube/index.ts';
import { kubectlFor, type KubectlRunner } from '../harness/kube/kubectl.ts';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

let kube: KubeDouble;
let k: KubectlRunner;
const NS = 'kc';
const json = async (args: string[]): Promise<Obj> => JSON.parse(await k([...args, '-o', 'json'])) as Obj;

const pod = (name: string, labels: Record<string, string> = {}): Obj => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: NS, labels: { app: 'web', ...labels } },
  spec: { containers: [{ name: 'app', image: 'nginx:1.27' }] },
});

beforeAll(async () => {
  kube = await startKubeDouble();
  k = kubectlFor(kube.kubeconfigPath);
  await k(['create', '-f', '-'], { stdin: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } } });
});
afterAll(async () => {
  await kube?.stop();
});

describe('kubectl against the Kubernetes double', () => {
  it('discovers the served API and reads cluster objects', async () => {
    const version = JSON.parse(await k(['version', '-o', 'json'])) as Obj;
    expect(version.serverVersion).toMatchObject({ major: '1', minor: '32' });
    const resources = (await k(['api-resources', '-o', 'name'])).split('\n');
    for (const r of [
      'pods',
      'deployments.apps',
      'poddisruptionbudgets.policy',
      'leases.coordination.k8s.io',
      'mutatingwebhookconfigurations.admissionregistration.k8s.io',
      'clusterrolebindings.rbac.authorization.k8s.io',
      'tokenreviews.authentication.k8s.io',
    ]) {
      expect(resources).toContain(r);
    }
    const nodes = await json(['get', 'nodes']);
    expect(nodes.items.map((n: Obj) => n.metadata.name)).toEqual(['node-1']);
    const table = await k(['get', 'namespaces']);
    expect(table).toMatch(/^NAME\s+STATUS\s+AGE/);
    expect(table).toMatch(new RegExp(`${NS}\\s+Active`));
    // Every namespace gets its default service account and root CA, as in a real cluster.
    expect((await json(['-n', NS, 'get', 'serviceaccount', 'default'])).metadata.name).toBe('default');
    expect((await json(['-n', NS, 'get', 'configmap', 'kube-root-ca.crt'])).data['ca.crt']).toBe(kube.caPem);
  });

  it('create -f stores a defaulted pod that gets scheduled; a second create is AlreadyExists', async () => {
    expect(await k(['create', '-f', '-'], { stdin: pod('one') })).toBe('pod/one created\n');
    const got = await json(['-n', NS, 'get', 'pod', 'one']);
    expect(got.metadata.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(got.spec).toMatchObject({ restartPolicy: 'Always', dnsPolicy: 'ClusterFirst', serviceAccountName: 'default', terminationGracePeriodSeconds: 30 });
    expect(got.spec.containers[0]).toMatchObject({ imagePullPolicy: 'IfNotPresent', terminationMessagePath: '/dev/termination-log' });
    expect(got.spec.volumes[0].name).toMatch(/^kube-api-access-/);
    await expect.poll(async () => (await json(['-n', NS, 'get', 'pod', 'one'])).status.phase).toBe('Running');
    const again = await k.result(['create', '-f', '-'], { stdin: pod('one') });
    expect(again.code).not.toBe(0);
    expect(again.stderr).toContain('Error from server (AlreadyExists): error when creating "STDIN": pods "one" already exists');
  });

  it('create -f with generateName gets a generated name; a missing name is Invalid', async () => {
    const out = await k(['create', '-f', '-'], { stdin: { ...pod(''), metadata: { generateName: 'gen-', namespace: NS } } });
    expect(out).toMatch(/^pod\/gen-[bcdfghjklmnpqrstvwxz2456789]{5} created\n$/);
    const bad = await k.result(['create', '-f', '-'], { stdin: { ...pod(''), metadata: { namespace: NS } } });
    expect(bad.stderr).toContain('The Pod "" is invalid: metadata.name: Required value: name or generateName is required');
  });

  it('label, patch --type=merge and --type=json change the object; a failing JSON patch test is refused', async () => {
    await k(['create', '-f', '-'], { stdin: pod('two') });
    expect(await k(['-n', NS, 'label', 'pod', 'two', 'tier=front'])).toBe('pod/two labeled\n');
    expect(await k(['-n', NS, 'patch', 'pod', 'two', '--type=merge', '-p', '{"metadata":{"annotations":{"owner":"shop"}}}'])).toBe('pod/two patched\n');
    expect(
      await k([
        '-n',
        NS,
        'patch',
        'pod',
        'two',
        '--type=json',
        '-p',
        '[{"op":"replace","path":"/spec/containers/0/image","value":"nginx:1.28"},{"op":"remove","path":"/metadata/labels/app"}]',
      ]),
    ).toBe('pod/two patched\n');
    const got = await json(['-n', NS, 'get', 'pod', 'two']);
    expect(got.metadata.labels).toEqual({ tier: 'front' });
    expect(got.metadata.annotations).toEqual({ owner: 'shop' });
    expect(got.spec.containers[0].image).toBe('nginx:1.28');
    const failed = await k.result(['-n', NS, 'patch', 'pod', 'two', '--type=json', '-p', '[{"op":"test","path":"/metadata/labels/tier","value":"back"}]']);
    expect(failed.code).not.toBe(0);
    expect(failed.stderr).toContain('The request is invalid');
    // Pod spec fields other than images are immutable, as the real validation says.
    const immutable = await k.result(['-n', NS, 'patch', 'pod', 'two', '--type=merge', '-p', '{"spec":{"restartPolicy":"Never"}}']);
    expect(immutable.stderr).toContain('Pod "two" is invalid: spec: Forbidden: pod updates may not change fields other than');
  });

  it('apply creates, then three-way merges: a dropped env var and container disappear', async () => {
    const deploy = (containers: Obj[]): Obj => ({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'shop', namespace: NS },
      spec: { replicas: 2, selector: { matchLabels: { app: 'shop' } }, template: { metadata: { labels: { app: 'shop' } }, spec: { containers } } },
    });
    const first = deploy([
      {
        name: 'a',
        image: 'busybox:1.36',
        env: [
          { name: 'X', value: '1' },
          { name: 'Y', value: '2' },
        ],
      },
      { name: 'b', image: 'busybox:1.36' },
    ]);
    expect(await k(['apply', '-f', '-'], { stdin: first })).toBe('deployment.apps/shop created\n');
    // A change made outside apply survives the next apply (three-way merge).
    await k(['-n', NS, 'annotate', 'deployment', 'shop', 'note=kept']);
    const second = deploy([{ name: 'a', image: 'busybox:1.37', env: [{ name: 'X', value: '1' }] }]);
    expect(await k(['apply', '-f', '-'], { stdin: second })).toBe('deployment.apps/shop configured\n');
    const got = await json(['-n', NS, 'get', 'deployment', 'shop']);
    expect(got.spec.template.spec.containers.map((c: Obj) => c.name)).toEqual(['a']);
    expect(got.spec.template.spec.containers[0]).toMatchObject({ image: 'busybox:1.37', env: [{ name: 'X', value: '1' }] });
    expect(got.metadata.annotations.note).toBe('kept');
    expect(JSON.parse(got.metadata.annotations['kubectl.kubernetes.io/last-applied-configuration'])).toMatchObject({ spec: { replicas: 2 } });
    expect(got.metadata.generation).toBe(2);
    expect(await k(['apply', '-f', '-'], { stdin: second })).toBe('deployment.apps/shop unchanged\n');
  });

  it('apply --server-side is refused with a clear 415', async () => {
    const r = await k.result(['apply', '--server-side', '-f', '-'], {
      stdin: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'ssa', namespace: NS }, data: { a: 'b' } },
    });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('server-side apply (application/apply-patch+yaml) is not implemented by the Nemutator Kubernetes double');
  });

  it('replace with a stale resourceVersion is a 409 Conflict', async () => {
    await k(['create', '-f', '-'], { stdin: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cfg', namespace: NS }, data: { v: '1' } } });
    const stale = await json(['-n', NS, 'get', 'configmap', 'cfg']);
    await k(['-n', NS, 'patch', 'configmap', 'cfg', '--type=merge', '-p', '{"data":{"v":"2"}}']);
    const r = await k.result(['replace', '-f', '-'], { stdin: { ...stale, data: { v: '3' } } });
    expect(r.stderr).toContain('Error from server (Conflict)');
    expect(r.stderr).toContain(
      'Operation cannot be fulfilled on configmaps "cfg": the object has been modified; please apply your changes to the latest version and try again',
    );
    expect((await json(['-n', NS, 'get', 'configmap', 'cfg'])).data.v).toBe('2');
  });

  it('get filters with label and field selectors', async () => {
    await k(['create', '-f', '-'], {
      stdin: {
        apiVersion: 'v1',
        kind: 'List',
        items: [
          pod('sel-a', { tier: 'db' }),
          pod('sel-b', { tier: 'cache' }),
          { ...pod('sel-c', { tier: 'db' }), spec: { nodeName: 'elsewhere', containers: [{ name: 'app', image: 'nginx:1.27' }] } },
        ],
      },
    });
    const names = async (args: string[]): Promise<string[]> => (await json(['-n', NS, 'get', 'pods', ...args])).items.map((p: Obj) => p.metadata.name);
    expect(await names(['-l', 'tier=db'])).toEqual(['sel-a', 'sel-c']);
    expect(await names(['-l', 'tier in (db,cache),tier!=cache'])).toEqual(['sel-a', 'sel-c']);
    expect(await names(['-l', 'tier', '--field-selector', 'spec.nodeName=elsewhere'])).toEqual(['sel-c']);
    expect(await names(['--field-selector', 'metadata.name=sel-b'])).toEqual(['sel-b']);
    const all = await json(['get', 'pods', '-A', '--field-selector', `metadata.namespace=${NS},metadata.name!=sel-b`, '-l', 'tier in (db,cache)']);
    expect(all.items.map((p: Obj) => p.metadata.name)).toEqual(['sel-a', 'sel-c']);
    const bad = await k.result(['-n', NS, 'get', 'pods', '--field-selector', 'spec.unknown=x']);
    expect(bad.stderr).toContain('field label not supported: spec.unknown');
  });

  it('get -w streams ADDED, MODIFIED and DELETED events', async () => {
    const child = k.spawn([
      '-n',
      NS,
      'get',
      'pods',
      '-l',
      'watch=me',
      '-w',
      '--output-watch-events',
      '-o',
      'jsonpath={.type} {.object.metadata.name} {.object.metadata.labels.step}{"\\n"}',
    ]);
    let out = '';
    child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    try {
      await k(['create', '-f', '-'], { stdin: pod('watched', { watch: 'me', step: 'created' }) });
      await expect.poll(() => out).toContain('ADDED watched created');
      await k(['-n', NS, 'label', 'pod', 'watched', 'step=labelled', '--overwrite']);
      await expect.poll(() => out).toContain('MODIFIED watched labelled');
      await k(['-n', NS, 'delete', 'pod', 'watched']);
      await expect.poll(() => out).toMatch(/DELETED watched/);
      const lines = out.trim().split('\n');
      expect(lines[0]).toBe('ADDED watched created');
      expect(lines.at(-1)).toMatch(/^DELETED watched/);
    } finally {
      child.kill();
    }
  });

  it('delete of a Deployment garbage-collects its ReplicaSets and pods', async () => {
    const containers = [{ name: 'c', image: 'busybox:1.36' }];
    await k(['create', '-f', '-'], {
      stdin: {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'gc', namespace: NS },
        spec: { replicas: 2, selector: { matchLabels: { app: 'gc' } }, template: { metadata: { labels: { app: 'gc' } }, spec: { containers } } },
      },
    });
    await expect.poll(async () => (await json(['-n', NS, 'get', 'pods', '-l', 'app=gc'])).items.length, { timeout: 10_000 }).toBe(2);
    const rs = await json(['-n', NS, 'get', 'replicasets', '-l', 'app=gc']);
    expect(rs.items[0].metadata.ownerReferences[0]).toMatchObject({ kind: 'Deployment', name: 'gc', controller: true });
    expect(await k(['-n', NS, 'delete', 'deployment', 'gc'])).toBe('deployment.apps "gc" deleted\n');
    await expect.poll(async () => (await json(['-n', NS, 'get', 'replicasets,pods', '-l', 'app=gc'])).items.length, { timeout: 10_000 }).toBe(0);
  });

  it('scale and rollout restart roll a Deployment to a new ReplicaSet', async () => {
    await k(['create', '-f', '-'], {
      stdin: {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'roll', namespace: NS },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: 'roll' } },
          template: { metadata: { labels: { app: 'roll' } }, spec: { containers: [{ name: 'c', image: 'busybox:1.36' }] } },
        },
      },
    });
    expect(await k(['-n', NS, 'rollout', 'status', 'deployment/roll', '--timeout=10s'])).toContain('successfully rolled out');
    expect(await k(['-n', NS, 'scale', 'deployment', 'roll', '--replicas=3'])).toBe('deployment.apps/roll scaled\n');
    expect(await k(['-n', NS, 'rollout', 'restart', 'deployment/roll'])).toBe('deployment.apps/roll restarted\n');
    expect(await k(['-n', NS, 'rollout', 'status', 'deployment/roll', '--timeout=10s'])).toContain('successfully rolled out');
    const sets = (await json(['-n', NS, 'get', 'replicasets', '-l', 'app=roll'])).items as Obj[];
    expect(sets).toHaveLength(2);
    const byRevision = sets.sort(
      (a, b) => Number(a.metadata.annotations['deployment.kubernetes.io/revision']) - Number(b.metadata.annotations['deployment.kubernetes.io/revision']),
    );
    expect(byRevision.map((s) => s.spec.replicas)).toEqual([0, 3]);
    const pods = (await json(['-n', NS, 'get', 'pods', '-l', 'app=roll'])).items as Obj[];
    expect(pods).toHaveLength(3);
    expect(pods.every((p) => p.metadata.labels['pod-template-hash'] === byRevision[1]!.metadata.labels['pod-template-hash'])).toBe(true);
    expect(await k(['-n', NS, 'rollout', 'history', 'deployment/roll'])).toMatch(/1\s+<none>\s+2\s+<none>/);
  });

  it('create generators, auth can-i and --as follow the RBAC objects', async () => {
    await k(['create', '-f', '-'], { stdin: pod('guarded') });
    await k(['-n', NS, 'create', 'serviceaccount', 'bot']);
    await k(['-n', NS, 'create', 'role', 'pod-reader', '--verb=get,list,watch', '--resource=pods']);
    await k(['-n', NS, 'create', 'rolebinding', 'bot-reads', '--role=pod-reader', `--serviceaccount=${NS}:bot`]);
    const as = `--as=system:serviceaccount:${NS}:bot`;
    expect((await k.result(['-n', NS, 'auth', 'can-i', 'list', 'pods', as])).stdout.trim()).toBe('yes');
    expect((await k.result(['-n', NS, 'auth', 'can-i', 'delete', 'pods', as])).stdout.trim()).toBe('no');
    expect((await k.result(['-n', 'default', 'auth', 'can-i', 'list', 'pods', as])).stdout.trim()).toBe('no');
    expect((await json(['-n', NS, 'get', 'pods', as])).items.length).toBeGreaterThan(0);
    const denied = await k.result(['-n', NS, 'delete', 'pod', 'guarded', as]);
    expect(denied.stderr).toContain(
      `Error from server (Forbidden): pods "guarded" is forbidden: User "system:serviceaccount:${NS}:bot" cannot delete resource "pods" in API group "" in the namespace "${NS}"`,
    );
    // The service account's own token, in its own kubeconfig, is authorized the same way.
    const token = (await k(['-n', NS, 'create', 'token', 'bot'])).trim();
    const botK = kubectlFor(await kube.kubeconfigFor(token, 'bot'));
    expect(await botK(['auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username}'])).toBe(`system:serviceaccount:${NS}:bot`);
    expect((await botK.result(['-n', NS, 'get', 'deployments'])).stderr).toContain(
      'cannot list resource "deployments" in API group "apps" in the namespace "kc"',
    );
  });
});
