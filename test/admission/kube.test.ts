// Admission through the Kubernetes API server double, as a cluster user sees it: kubectl
// creates a Pod and Deployments that use nemu_ placeholders, the controller (dictionary in
// a real redis-server) mutates them, the mutation log records it, rollback undoes it, and
// with the controller stopped pods are still admitted (failurePolicy: Ignore).
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import fjp, { type Operation } from 'fast-json-patch';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import { silentLogger } from '#common/log.js';
import { type RunningController, startController } from '#controller/app.js';
import { controllerFeatures } from '#controller/features.js';
import { SharedTokenAgentAuthenticator } from '#controller/fleet/auth.js';
import { localAuthorizer } from '#controller/server/access.js';
import { StaticTokenAuthenticator } from '#controller/server/auth.js';

import { apiFetch, testControllerConfig, webhookConfiguration } from '../harness/controller.ts';
import { type KubeDouble, startKubeDouble } from '../harness/kube/index.ts';

const exec = promisify(execFile);
let kube: KubeDouble;
let c: RunningController;
let dir: string;
const NS = 'shop';
const TOKEN = 'admin-token';

async function kubectl(args: string[], stdin?: unknown): Promise<string> {
  const child = exec('kubectl', ['--kubeconfig', kube.kubeconfigPath, ...args], { timeout: 20_000 });
  if (stdin !== undefined) child.child.stdin!.end(JSON.stringify(stdin));
  return (await child).stdout;
}
const getJson = async (what: string, name: string) => JSON.parse(await kubectl(['-n', NS, 'get', what, name, '-o', 'json'])) as Obj;
async function api<T = Obj>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
  const res = await apiFetch(c, c.apiUrl + path, {
    method,
    headers: { authorization: `Bearer ${TOKEN}` },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, body: (res.status === 204 ? undefined : await res.json()) as T };
}
type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'nemu-kube-adm-'));
  kube = await startKubeDouble();
  const config = testControllerConfig({
    stateDir: dir,
    kubeconfig: kube.kubeconfigPath,
    dictionary: 'redis',
    redisUrl: inject('redisUrl'),
    redisKeyPrefix: `kube-${process.pid}:`,
  });
  c = await startController(config, {
    log: silentLogger,
    mode: 'cluster',
    apiAuth: new StaticTokenAuthenticator(TOKEN),
    authorizer: localAuthorizer,
    agentAuth: new SharedTokenAgentAuthenticator('x'),
    ...controllerFeatures(),
  });
  const dict: Record<string, string> = {
    nemu_label_team: 'example.com/team',
    nemu_label_value_pay: 'payments',
    nemu_label_app: 'app',
    nemu_label_value_front: 'storefront',
    nemu_anno_contact: 'example.com/contact',
    nemu_env_db: 'postgres://db.shop:5432',
    nemu_image_ubuntu: '20.04',
    nemu_selectors_replace_list: 'nemu_label_app',
    nemu_tolerations: JSON.stringify([
      {
        match: { namespace: NS, labels: { 'example.com/team': 'payments' } },
        tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'payments', effect: 'NoSchedule' }],
      },
    ]),
  };
  for (const [key, value] of Object.entries(dict)) expect((await api('PUT', `/dictionary/${key}`, { value })).status).toBe(200);
  await kubectl(['apply', '-f', '-'], webhookConfiguration(c));
  await kubectl(['create', '-f', '-'], { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
}, 60_000);
afterAll(async () => {
  await c?.stop();
  await kube?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const container = { name: 'app', image: 'ubuntu:14.04', command: ['sleep', 'infinity'], env: [{ name: 'DATABASE_URL', value: 'nemu_env_db' }] };
const deployment = (name: string, extra: Obj = {}) => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name, namespace: NS, labels: { nemu_label_team: 'nemu_label_value_pay' }, ...extra },
  spec: {
    replicas: 1,
    selector: { matchLabels: { 'app.kubernetes.io/name': name } },
    template: {
      metadata: { labels: { 'app.kubernetes.io/name': name, nemu_label_team: 'nemu_label_value_pay' }, annotations: { nemu_anno_contact: 'ops' } },
      spec: { containers: [container] },
    },
  },
});

describe('admission through the API server double', () => {
  it('kubectl create of a Pod gets the documented mutations, and the mutation log holds them', async () => {
    await kubectl(['create', '-f', '-'], {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'lonely', namespace: NS, labels: { nemu_label_team: 'nemu_label_value_pay' } },
      spec: { containers: [container] },
    });
    const pod = await getJson('pod', 'lonely');
    expect(pod.metadata.labels['example.com/team']).toBe('payments');
    expect(pod.metadata.labels.nemu_label_team).toBeUndefined();
    expect(pod.spec.containers[0].image).toBe('ubuntu:20.04');
    expect(pod.spec.containers[0].env).toEqual([{ name: 'DATABASE_URL', value: 'postgres://db.shop:5432' }]);
    expect(pod.spec.tolerations).toContainEqual({ key: 'dedicated', operator: 'Equal', value: 'payments', effect: 'NoSchedule' });
    const { body } = await api<{ items: Obj[] }>('GET', `/mutations?namespace=${NS}&name=lonely&kind=Pod`);
    expect(body.items).toHaveLength(1);
    expect(body.items[0]).toMatchObject({ kind: 'Pod', namespace: NS, name: 'lonely', operation: 'CREATE', verbs: ['labels', 'tolerations', 'env', 'image'] });
    expect(pod.metadata.labels['nemutator.io/mutation']).toBe(body.items[0]!.id);
  });

  it('kubectl create of a Deployment mutates its labels, template and listed selectors consistently', async () => {
    const d = deployment('front');
    d.spec.selector.matchLabels = { nemu_label_app: 'nemu_label_value_front' } as never;
    d.spec.template.metadata.labels = { nemu_label_app: 'nemu_label_value_front', nemu_label_team: 'nemu_label_value_pay' } as never;
    await kubectl(['create', '-f', '-'], d);
    const got = await getJson('deployment', 'front');
    expect(got.metadata.labels).toEqual({ 'example.com/team': 'payments' });
    expect(got.spec.selector.matchLabels).toEqual({ app: 'storefront' });
    expect(got.spec.template.metadata.labels).toEqual({ app: 'storefront', 'example.com/team': 'payments' });
    expect(got.spec.template.metadata.annotations).toEqual({ 'example.com/contact': 'ops' });
    expect(got.spec.template.spec.containers[0].image).toBe('ubuntu:20.04');
    const { body } = await api<{ items: Obj[] }>('GET', `/mutations?namespace=${NS}&name=front&kind=Deployment`);
    const r = await api<{ code: string; message: string }>('POST', `/mutations/${body.items[0]!.id}/rollback`);
    expect(r.status).toBe(409);
    expect(r.body.message).toMatch(/selector .* does not allow a selector to change/);
  });

  it('rollback restores a Deployment exactly, and the UPDATE it causes is not mutated again', async () => {
    const original = deployment('web');
    await kubectl(['create', '-f', '-'], original);
    const mutated = await getJson('deployment', 'web');
    expect(mutated.spec.template.spec.containers[0].env[0].value).toBe('postgres://db.shop:5432');
    const { body } = await api<{ items: Obj[] }>('GET', `/mutations?namespace=${NS}&name=web&kind=Deployment`);
    const entry = body.items[0]!;
    const r = await api<Obj>('POST', `/mutations/${entry.id}/rollback`);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ kind: 'Deployment', name: 'web', action: 'patched' });
    const restored = await getJson('deployment', 'web');
    expect(restored.metadata.labels).toEqual(original.metadata.labels);
    expect(restored.spec.template).toEqual(
      fjp.applyPatch(structuredClone(mutated), structuredClone(entry.reversePatch as Operation[])).newDocument.spec.template,
    );
    expect(restored.spec.template.metadata).toEqual(original.spec.template.metadata);
    expect(restored.spec.template.spec.containers[0]).toMatchObject(container);
    // rolling back twice is refused
    expect((await api('POST', `/mutations/${entry.id}/rollback`)).status).toBe(409);
  });

  it('a rolled-back pod is evicted and its replacement is not mutated again', async () => {
    // The Deployment itself is left alone, so its pods are mutated at creation.
    await kubectl(['create', '-f', '-'], deployment('api', { annotations: { 'nemutator.io/skip': 'true' } }));
    const mutatedPod = async () => {
      const pods = JSON.parse(await kubectl(['-n', NS, 'get', 'pods', '-l', 'app.kubernetes.io/name=api', '-o', 'json'])).items as Obj[];
      return pods.filter((p) => !p.metadata.deletionTimestamp);
    };
    await expect.poll(async () => (await mutatedPod()).length, { timeout: 15_000 }).toBe(1);
    const [pod] = await mutatedPod();
    expect(pod!.metadata.labels['example.com/team']).toBe('payments');
    const id = pod!.metadata.labels['nemutator.io/mutation'];
    const r = await api<Obj>('POST', `/mutations/${id}/rollback`);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ kind: 'Pod', name: pod!.metadata.name, action: 'evicted', skipRule: { kind: 'ReplicaSet' } });
    await expect.poll(async () => (await mutatedPod()).map((p) => p.metadata.name).filter((n) => n !== pod!.metadata.name).length, { timeout: 15_000 }).toBe(1);
    const replacement = (await mutatedPod()).find((p) => p.metadata.name !== pod!.metadata.name)!;
    expect(replacement.metadata.labels.nemu_label_team).toBe('nemu_label_value_pay');
    expect(replacement.metadata.labels['nemutator.io/mutation']).toBeUndefined();
    expect(replacement.spec.containers[0].image).toBe('ubuntu:14.04');

    // The rollback's skip rule is listed, and once it is lifted the next pod is mutated again.
    const owner = (r.body as { skipRule: { name: string } }).skipRule.name;
    const rules = await api<{ items: Array<{ kind: string; name: string; verbs: string[]; mutationId: string }> }>('GET', `/skip-rules?namespace=${NS}`);
    expect(rules.body.items).toContainEqual(expect.objectContaining({ kind: 'ReplicaSet', name: owner, mutationId: id }));
    expect((await api('DELETE', `/skip-rules/${NS}/ReplicaSet/${owner}`)).status).toBe(204);
    expect((await api<{ code: string }>('DELETE', `/skip-rules/${NS}/ReplicaSet/${owner}`)).body.code).toBe('NEMU_ERR_NOT_FOUND');
    await kubectl(['-n', NS, 'delete', 'pod', replacement.metadata.name, '--wait=false']);
    await expect
      .poll(
        async () =>
          (await mutatedPod())
            .filter((p) => p.metadata.name !== pod!.metadata.name && p.metadata.name !== replacement.metadata.name)
            .map((p) => p.metadata.labels['example.com/team']),
        { timeout: 15_000 },
      )
      .toEqual(['payments']);
  });

  it('with the controller stopped, pods are still admitted (unmutated)', async () => {
    await c.stop();
    await kubectl(['create', '-f', '-'], {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'while-down', namespace: NS, labels: { nemu_label_team: 'x' } },
      spec: { containers: [container] },
    });
    const pod = await getJson('pod', 'while-down');
    expect(pod.metadata.labels).toEqual({ nemu_label_team: 'x' });
    expect(kube.webhookCalls.at(-1)?.outcome).toMatch(/^ignored/);
  });
});
