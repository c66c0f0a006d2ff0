// Mutating admission in the Kubernetes double, as kube-apiserver does it: a test webhook
// registered with kubectl through a MutatingWebhookConfiguration mutates pods created with
// kubectl; failurePolicy, timeoutSeconds, invalid responses, denials, reinvocation, dry
// run, selectors, service references and HTTP/2 behave as on a real server.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type CertificateAuthority, createCertificateAuthority, type KubeDouble, startKubeDouble } from '../harness/kube/index.ts';
import { kubectlFor, type KubectlRunner } from '../harness/kube/kubectl.ts';
import { type AdmissionRequest, allow, deny, startTestWebhook, type TestWebhook } from '../harness/kube/webhook-fixture.ts';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

let kube: KubeDouble;
let k: KubectlRunner;
let ca: CertificateAuthority;
let hook: TestWebhook;
let deadPort: number;
const NS = 'adm';
const webhooks: TestWebhook[] = [];

const pod = (name: string, labels: Record<string, string>, ns = NS): Obj => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: ns, labels },
  spec: { containers: [{ name: 'app', image: 'nginx:1.27' }] },
});

/** A webhook entry for pods carrying label case=<name>, so tests do not see each other's pods. */
function entry(name: string, clientConfig: Obj, extra: Obj = {}): Obj {
  return {
    name: `${name}.example.com`,
    clientConfig,
    rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'] }],
    objectSelector: { matchLabels: { case: name } },
    admissionReviewVersions: ['v1'],
    sideEffects: 'None',
    failurePolicy: 'Fail',
    timeoutSeconds: 5,
    ...extra,
  };
}

async function register(name: string, hooks: Obj[]): Promise<void> {
  await k(['apply', '-f', '-'], {
    stdin: { apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration', metadata: { name }, webhooks: hooks },
  });
}

const urlOf = (w: TestWebhook): Obj => ({ url: w.url, caBundle: w.caBundle });
const requestsFor = (w: TestWebhook, name: string): AdmissionRequest[] =>
  w.requests.filter((r) => r.object?.metadata?.labels?.case === name || r.oldObject?.metadata?.labels?.case === name);

beforeAll(async () => {
  kube = await startKubeDouble();
  k = kubectlFor(kube.kubeconfigPath);
  ca = await createCertificateAuthority('test-webhook-ca');
  // The default handler adds a label and an env var, with a warning.
  hook = await startTestWebhook({
    ca,
    handler: (req) =>
      allow(
        req,
        [
          { op: 'add', path: '/metadata/labels/mutated', value: 'yes' },
          { op: 'add', path: '/spec/containers/0/env', value: [{ name: 'INJECTED', value: 'by-webhook' }] },
        ],
        { warnings: ['mutated by the test webhook'] },
      ),
  });
  webhooks.push(hook);
  const dead = await startTestWebhook({ ca, handler: (req) => allow(req) });
  deadPort = dead.port;
  await dead.stop();
  await k(['create', '-f', '-'], { stdin: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS, labels: { webhooks: 'on' } } } });
  await k(['create', '-f', '-'], { stdin: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'quiet' } } });
});
afterAll(async () => {
  await Promise.all(webhooks.map((w) => w.stop()));
  await kube?.stop();
});

describe('mutating admission webhooks', () => {
  it('a webhook registered with kubectl mutates a pod created with kubectl, from a real AdmissionReview', async () => {
    await register('basic', [entry('basic', urlOf(hook))]);
    const created = await k.result(['create', '-f', '-'], { stdin: pod('p1', { case: 'basic' }) });
    expect(created.stdout).toBe('pod/p1 created\n');
    expect(created.stderr).toContain('Warning: mutated by the test webhook');
    const got = JSON.parse(await k(['-n', NS, 'get', 'pod', 'p1', '-o', 'json'])) as Obj;
    expect(got.metadata.labels).toEqual({ case: 'basic', mutated: 'yes' });
    expect(got.spec.containers[0].env).toEqual([{ name: 'INJECTED', value: 'by-webhook' }]);
    const [req] = requestsFor(hook, 'basic');
    expect(req).toMatchObject({
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      name: 'p1',
      namespace: NS,
      operation: 'CREATE',
      userInfo: { username: 'kubernetes-admin', groups: ['system:masters', 'system:authenticated'] },
      dryRun: false,
      oldObject: null,
      options: { kind: 'CreateOptions', apiVersion: 'meta.k8s.io/v1', fieldManager: 'kubectl-create' },
    });
    expect(req!.uid).toMatch(/^[0-9a-f-]{36}$/);
    // Webhooks see the object after defaulting but before the server fills in system fields.
    expect(req!.object!.metadata.uid).toBeUndefined();
    expect(req!.object!.metadata.creationTimestamp).toBeUndefined();
    expect(req!.object!.spec.serviceAccountName).toBe('default');
    expect(hook.httpVersions.at(-1)).toBe('1.1');
  });

  it('pods created by the ReplicaSet controller go through the webhook too', async () => {
    await register('workload', [entry('workload', urlOf(hook))]);
    await k(['create', '-f', '-'], {
      stdin: {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'web', namespace: NS },
        spec: {
          replicas: 1,
          selector: { matchLabels: { case: 'workload' } },
          template: { metadata: { labels: { case: 'workload' } }, spec: { containers: [{ name: 'app', image: 'nginx:1.27' }] } },
        },
      },
    });
    await expect.poll(() => requestsFor(hook, 'workload').length, { timeout: 10_000 }).toBe(1);
    const [req] = requestsFor(hook, 'workload');
    expect(req!.userInfo.username).toBe('system:serviceaccount:kube-system:replicaset-controller');
    expect(req!.name).toBeUndefined();
    expect(req!.object!.metadata.generateName).toMatch(/^web-[a-z0-9]+-$/);
    await expect.poll(async () => JSON.parse(await k(['-n', NS, 'get', 'pods', '-l', 'case=workload,mutated=yes', '-o', 'json'])).items.length).toBe(1);
  });

  it('with the webhook down, failurePolicy Ignore admits the pod unmutated and Fail rejects it', async () => {
    const down = { url: `https://127.0.0.1:${deadPort}/mutate`, caBundle: hook.caBundle };
    await register('down', [
      entry('down-ignore', down, { failurePolicy: 'Ignore', timeoutSeconds: 2 }),
      entry('down-fail', down, { failurePolicy: 'Fail', timeoutSeconds: 2 }),
    ]);
    expect(await k(['create', '-f', '-'], { stdin: pod('ignored', { case: 'down-ignore' }) })).toBe('pod/ignored created\n');
    expect(JSON.parse(await k(['-n', NS, 'get', 'pod', 'ignored', '-o', 'json'])).metadata.labels).toEqual({ case: 'down-ignore' });
    expect(kube.webhookCalls.filter((c) => c.webhook === 'down-ignore.example.com').at(-1)?.outcome).toMatch(
      /^ignored: failed to call webhook: .*connection refused/,
    );
    const failed = await k.result(['create', '-f', '-'], { stdin: pod('failed', { case: 'down-fail' }) });
    expect(failed.code).not.toBe(0);
    expect(failed.stderr).toContain(
      `Error from server (InternalError): error when creating "STDIN": Internal error occurred: failed calling webhook "down-fail.example.com": failed to call webhook: Post "https://127.0.0.1:${deadPort}/mutate?timeout=2s": dial tcp 127.0.0.1:${deadPort}: connect: connection refused`,
    );
    expect((await k.result(['-n', NS, 'get', 'pod', 'failed'])).stderr).toContain('pods "failed" not found');
  });

  it('invalid responses and untrusted certificates fail the call, subject to failurePolicy', async () => {
    const liar = await startTestWebhook({
      ca,
      handler: (req, { path }) => {
        const base = allow(req, [{ op: 'add', path: '/metadata/labels/mutated', value: 'yes' }]) as { response: Obj };
        if (path.startsWith('/wrong-uid')) base.response.uid = 'not-the-request-uid';
        if (path.startsWith('/no-patch-type')) delete base.response.patchType;
        return base;
      },
    });
    webhooks.push(liar);
    const otherCa = await createCertificateAuthority('someone-else');
    const at = (path: string): Obj => ({ url: liar.url.replace('/mutate', path), caBundle: liar.caBundle });
    await register('invalid', [
      entry('wrong-uid', at('/wrong-uid')),
      entry('no-patch-type', at('/no-patch-type')),
      entry('untrusted', { url: liar.url, caBundle: Buffer.from(otherCa.certPem).toString('base64') }),
      entry('wrong-uid-ignored', at('/wrong-uid'), { failurePolicy: 'Ignore' }),
    ]);
    const wrongUid = await k.result(['create', '-f', '-'], { stdin: pod('w', { case: 'wrong-uid' }) });
    expect(wrongUid.stderr).toMatch(
      /failed calling webhook "wrong-uid.example.com": received invalid webhook response: expected response.uid="[0-9a-f-]{36}", got "not-the-request-uid"/,
    );
    const noType = await k.result(['create', '-f', '-'], { stdin: pod('n', { case: 'no-patch-type' }) });
    expect(noType.stderr).toContain(
      'failed calling webhook "no-patch-type.example.com": received invalid webhook response: patchType is required when patch is present',
    );
    const untrusted = await k.result(['create', '-f', '-'], { stdin: pod('u', { case: 'untrusted' }) });
    expect(untrusted.stderr).toContain('x509: certificate signed by unknown authority');
    expect(await k(['create', '-f', '-'], { stdin: pod('i', { case: 'wrong-uid-ignored' }) })).toBe('pod/i created\n');
    expect(JSON.parse(await k(['-n', NS, 'get', 'pod', 'i', '-o', 'json'])).metadata.labels).toEqual({ case: 'wrong-uid-ignored' });
  });

  it('a denial is returned with the webhook message and code, whatever the failurePolicy', async () => {
    const denier = await startTestWebhook({ ca, handler: (req) => deny(req, 'no pods on Fridays', 403) });
    webhooks.push(denier);
    await register('deny', [entry('deny', urlOf(denier), { failurePolicy: 'Ignore' })]);
    const r = await k.result(['create', '-f', '-'], { stdin: pod('d', { case: 'deny' }) });
    // The status keeps the webhook's code and (empty) reason, so kubectl prints no reason, as for Kyverno denials.
    expect(r.stderr).toContain('Error from server: error when creating "STDIN": admission webhook "deny.example.com" denied the request: no pods on Fridays');
    const withReason = await startTestWebhook({
      ca,
      handler: (req) => ({
        apiVersion: 'admission.k8s.io/v1',
        kind: 'AdmissionReview',
        response: { uid: req.uid, allowed: false, status: { code: 403, reason: 'Forbidden', message: 'not here' } },
      }),
    });
    webhooks.push(withReason);
    await register('deny', [entry('deny', urlOf(withReason))]);
    expect((await k.result(['create', '-f', '-'], { stdin: pod('d', { case: 'deny' }) })).stderr).toContain(
      'Error from server (Forbidden): error when creating "STDIN": admission webhook "deny.example.com" denied the request: not here',
    );
  });

  it('timeoutSeconds bounds a hanging webhook', async () => {
    const sloth = await startTestWebhook({ ca, handler: () => new Promise(() => undefined) });
    webhooks.push(sloth);
    await register('slow', [
      entry('slow-fail', urlOf(sloth), { timeoutSeconds: 1 }),
      entry('slow-ignore', urlOf(sloth), { timeoutSeconds: 1, failurePolicy: 'Ignore' }),
    ]);
    const started = Date.now();
    const r = await k.result(['create', '-f', '-'], { stdin: pod('s', { case: 'slow-fail' }) });
    expect(r.stderr).toMatch(
      /failed calling webhook "slow-fail.example.com": failed to call webhook: Post "https:\/\/127.0.0.1:\d+\/mutate\?timeout=1s": context deadline exceeded/,
    );
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    expect(await k(['create', '-f', '-'], { stdin: pod('s2', { case: 'slow-ignore' }) })).toBe('pod/s2 created\n');
  });

  it('reinvocationPolicy IfNeeded calls an earlier webhook again after a later one changed the object', async () => {
    const seen: Obj[] = [];
    const first = await startTestWebhook({
      ca,
      handler: (req) => {
        seen.push(structuredClone(req.object!.metadata.labels));
        return allow(req, req.object!.metadata.labels.first ? [] : [{ op: 'add', path: '/metadata/labels/first', value: 'done' }]);
      },
    });
    const second = await startTestWebhook({
      ca,
      handler: (req) => allow(req, req.object!.metadata.labels.second ? [] : [{ op: 'add', path: '/metadata/labels/second', value: 'done' }]),
    });
    webhooks.push(first, second);
    // Configurations are called in name order: a-first, then b-second.
    await register('a-first', [entry('reinvoke', urlOf(first), { reinvocationPolicy: 'IfNeeded' })]);
    await register('b-second', [entry('reinvoke-later', urlOf(second), { objectSelector: { matchLabels: { case: 'reinvoke' } } })]);
    await k(['create', '-f', '-'], { stdin: pod('r', { case: 'reinvoke' }) });
    expect(seen).toEqual([{ case: 'reinvoke' }, { case: 'reinvoke', first: 'done', second: 'done' }]);
    expect(JSON.parse(await k(['-n', NS, 'get', 'pod', 'r', '-o', 'json'])).metadata.labels).toEqual({ case: 'reinvoke', first: 'done', second: 'done' });

    seen.length = 0;
    await k([
      'patch',
      'mutatingwebhookconfiguration',
      'a-first',
      '--type=json',
      '-p',
      '[{"op":"replace","path":"/webhooks/0/reinvocationPolicy","value":"Never"}]',
    ]);
    await k(['create', '-f', '-'], { stdin: pod('r2', { case: 'reinvoke' }) });
    expect(seen).toHaveLength(1);
  });

  it('server-side dry run calls webhooks with dryRun and stores nothing; sideEffects must allow it', async () => {
    await register('dry', [entry('dry', urlOf(hook), { sideEffects: 'NoneOnDryRun' })]);
    const out = JSON.parse(await k(['create', '--dry-run=server', '-o', 'json', '-f', '-'], { stdin: pod('dry', { case: 'dry' }) })) as Obj;
    expect(out.metadata.labels.mutated).toBe('yes');
    expect(requestsFor(hook, 'dry').at(-1)?.dryRun).toBe(true);
    expect((await k.result(['-n', NS, 'get', 'pod', 'dry'])).code).not.toBe(0);
    // admissionregistration/v1 only accepts None and NoneOnDryRun…
    const some = await k.result(['apply', '-f', '-'], {
      stdin: {
        apiVersion: 'admissionregistration.k8s.io/v1',
        kind: 'MutatingWebhookConfiguration',
        metadata: { name: 'some' },
        webhooks: [entry('some', urlOf(hook), { sideEffects: 'Some' })],
      },
    });
    expect(some.stderr).toContain('webhooks[0].sideEffects: Unsupported value: "Some": supported values: "None", "NoneOnDryRun"');
    // …and a stored configuration with Unknown side effects (from v1beta1 days) refuses dry runs.
    kube.put({
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'MutatingWebhookConfiguration',
      metadata: { name: 'legacy' },
      webhooks: [entry('legacy', urlOf(hook), { sideEffects: 'Unknown', matchPolicy: 'Equivalent', namespaceSelector: {}, reinvocationPolicy: 'Never' })],
    });
    const refused = await k.result(['create', '--dry-run=server', '-f', '-'], { stdin: pod('dry2', { case: 'legacy' }) });
    expect(refused.stderr).toContain('admission webhook "legacy.example.com" does not support dry run');
  });

  it('namespaceSelector limits the webhook; UPDATE reviews carry the old object', async () => {
    const recorder = await startTestWebhook({ ca, handler: (req) => allow(req) });
    webhooks.push(recorder);
    await register('updates', [
      {
        ...entry('updates', urlOf(recorder)),
        objectSelector: {},
        namespaceSelector: { matchLabels: { webhooks: 'on' } },
        rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['UPDATE'], resources: ['configmaps'] }],
      },
    ]);
    for (const ns of [NS, 'quiet']) {
      await k(['create', '-f', '-'], {
        stdin: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cm', namespace: ns, labels: { case: 'updates' } }, data: { v: '1' } },
      });
      await k(['-n', ns, 'label', 'configmap', 'cm', 'step=two']);
    }
    const updates = recorder.requests;
    expect(updates).toHaveLength(1);
    expect(updates[0]).toMatchObject({ operation: 'UPDATE', namespace: NS, name: 'cm', options: { kind: 'UpdateOptions' } });
    expect(updates[0]!.oldObject!.metadata.labels).toEqual({ case: 'updates' });
    expect(updates[0]!.object!.metadata.labels).toEqual({ case: 'updates', step: 'two' });
    expect(updates[0]!.oldObject!.metadata.resourceVersion).toMatch(/^\d+$/);
  });

  it('a service reference reaches the webhook through the resolver, over HTTP/2, verified for <svc>.<ns>.svc', async () => {
    const h2 = await startTestWebhook({
      ca,
      http2: true,
      dnsNames: ['hook.adm.svc'],
      handler: (req) => allow(req, [{ op: 'add', path: '/metadata/labels/via', value: 'service' }]),
    });
    webhooks.push(h2);
    kube.serviceResolver = (ns, name, port) => (ns === NS && name === 'hook' && port === 8443 ? `https://127.0.0.1:${h2.port}` : undefined);
    await register('service', [entry('service', { service: { namespace: NS, name: 'hook', path: '/mutate', port: 8443 }, caBundle: h2.caBundle })]);
    await k(['create', '-f', '-'], { stdin: pod('svc', { case: 'service' }) });
    expect(JSON.parse(await k(['-n', NS, 'get', 'pod', 'svc', '-o', 'json'])).metadata.labels.via).toBe('service');
    expect(h2.httpVersions).toEqual(['2.0']);
    // The certificate must name the service: the same webhook under another name is refused.
    kube.serviceResolver = () => `https://127.0.0.1:${h2.port}`;
    await register('service', [entry('service', { service: { namespace: NS, name: 'other', path: '/mutate', port: 8443 }, caBundle: h2.caBundle })]);
    const r = await k.result(['create', '-f', '-'], { stdin: pod('svc2', { case: 'service' }) });
    expect(r.stderr).toMatch(
      /failed calling webhook "service.example.com": failed to call webhook: Post "https:\/\/other.adm.svc:8443\/mutate\?timeout=5s": tls: failed to verify certificate/,
    );
  });
});
