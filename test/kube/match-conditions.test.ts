// CEL matchConditions on mutating webhooks in the Kubernetes double, as kube-apiserver
// evaluates them (k8s.io/apiserver/pkg/admission/plugin/webhook/matchconditions): the
// shipped manifests apply, the mirror-pod condition keeps mirror pods away from the
// webhook, evaluation errors follow failurePolicy, CEL outside the double's subset is
// refused at creation, and the evaluator's semantics are pinned by unit tests.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';

import { CelCompileError, CelUnsupportedError, compileCel } from '../harness/kube/cel.ts';
import { type CertificateAuthority, createCertificateAuthority, type KubeDouble, startKubeDouble } from '../harness/kube/index.ts';
import { kubectlFor, type KubectlRunner } from '../harness/kube/kubectl.ts';
import { allow, startTestWebhook, type TestWebhook } from '../harness/kube/webhook-fixture.ts';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const MIRROR = "!has(object.metadata.annotations) || !('kubernetes.io/config.mirror' in object.metadata.annotations)";
const NS = 'mc';

let kube: KubeDouble;
let k: KubectlRunner;
let ca: CertificateAuthority;
let hook: TestWebhook;

const pod = (name: string, extra: { labels?: Record<string, string>; annotations?: Record<string, string> } = {}): Obj => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: NS, ...extra },
  spec: { containers: [{ name: 'app', image: 'nginx:1.27' }] },
});

function entry(name: string, extra: Obj = {}): Obj {
  return {
    name: `${name}.example.com`,
    clientConfig: { url: hook.url, caBundle: hook.caBundle },
    rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'] }],
    objectSelector: { matchLabels: { case: name } },
    admissionReviewVersions: ['v1'],
    sideEffects: 'None',
    failurePolicy: 'Fail',
    timeoutSeconds: 5,
    ...extra,
  };
}

const configuration = (name: string, hooks: Obj[]): Obj => ({
  apiVersion: 'admissionregistration.k8s.io/v1',
  kind: 'MutatingWebhookConfiguration',
  metadata: { name },
  webhooks: hooks,
});
const seen = (name: string): string[] => hook.requests.filter((r) => r.object?.metadata?.name === name).map((r) => r.object!.metadata.name as string);

beforeAll(async () => {
  kube = await startKubeDouble();
  k = kubectlFor(kube.kubeconfigPath);
  ca = await createCertificateAuthority('match-conditions-ca');
  hook = await startTestWebhook({ ca, handler: (req) => allow(req, [{ op: 'add', path: '/metadata/labels/mutated', value: 'yes' }]) });
  await k(['create', '-f', '-'], { stdin: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } } });
});
afterAll(async () => {
  await hook?.stop();
  await kube?.stop();
});

describe('matchConditions through kubectl', () => {
  it('kubectl apply -k manifests/ applies the whole shipped base, match conditions included', async () => {
    const out = await k(['apply', '-k', 'manifests/']);
    expect(out).toContain('mutatingwebhookconfiguration.admissionregistration.k8s.io/nemutator created');
    const stored = JSON.parse(await k(['get', 'mutatingwebhookconfiguration', 'nemutator', '-o', 'json'])) as Obj;
    const pods = (stored.webhooks as Obj[]).filter((w) => w.rules[0].resources.includes('pods'));
    expect(pods.map((w) => w.matchConditions)).toEqual([
      [{ name: 'exclude-mirror-pods', expression: MIRROR }],
      [{ name: 'exclude-mirror-pods', expression: MIRROR }],
    ]);
    // A second apply changes nothing.
    expect(await k(['apply', '-k', 'manifests/'])).toContain('mutatingwebhookconfiguration.admissionregistration.k8s.io/nemutator unchanged');
  });

  it('the shipped mirror-pod condition sends a normal pod to the webhook and keeps a mirror pod away', async () => {
    // Take the condition from the shipped manifest, so the test follows it.
    const docs = parseAllDocuments(readFileSync('manifests/webhook/mutatingwebhookconfiguration.yaml', 'utf8')).map((d) => d.toJS() as Obj);
    const shipped = (docs[0]!.webhooks as Obj[])[0]!.matchConditions as Obj[];
    expect(shipped).toEqual([{ name: 'exclude-mirror-pods', expression: MIRROR }]);
    await k(['apply', '-f', '-'], { stdin: configuration('mirror', [entry('mirror', { matchConditions: shipped })]) });

    await k(['create', '-f', '-'], { stdin: pod('normal', { labels: { case: 'mirror' } }) });
    await k(['create', '-f', '-'], { stdin: pod('annotated', { labels: { case: 'mirror' }, annotations: { 'example.com/other': 'x' } }) });
    await k(['create', '-f', '-'], { stdin: pod('mirrored', { labels: { case: 'mirror' }, annotations: { 'kubernetes.io/config.mirror': 'abc123' } }) });
    expect(seen('normal')).toEqual(['normal']);
    expect(seen('annotated')).toEqual(['annotated']);
    expect(seen('mirrored')).toEqual([]);
    const labels = async (name: string): Promise<Obj> => JSON.parse(await k(['-n', NS, 'get', 'pod', name, '-o', 'json'])).metadata.labels;
    expect(await labels('normal')).toEqual({ case: 'mirror', mutated: 'yes' });
    expect(await labels('mirrored')).toEqual({ case: 'mirror' });
  });

  it('all conditions must be true; a false one skips the webhook even next to an error', async () => {
    await k(['apply', '-f', '-'], {
      stdin: configuration('multi', [
        entry('multi', {
          matchConditions: [
            { name: 'is-create', expression: "request.operation == 'CREATE' && oldObject == null" },
            { name: 'namespace', expression: `request.namespace in ['${NS}', 'other'] && request.userInfo.username == 'kubernetes-admin'` },
            { name: 'opted-in', expression: "object.metadata.labels['opt'] == 'in'" },
          ],
        }),
      ]),
    });
    await k(['create', '-f', '-'], { stdin: pod('opted', { labels: { case: 'multi', opt: 'in' } }) });
    await k(['create', '-f', '-'], { stdin: pod('opted-out', { labels: { case: 'multi', opt: 'out' } }) });
    expect(seen('opted')).toEqual(['opted']);
    expect(seen('opted-out')).toEqual([]);

    // One condition errors (no such key), another is false: false wins, the webhook is skipped.
    await k(['apply', '-f', '-'], {
      stdin: configuration('multi', [
        entry('multi', {
          matchConditions: [
            { name: 'errors', expression: 'object.spec.nope == 1' },
            { name: 'false', expression: "object.metadata.labels['opt'] == 'never'" },
          ],
        }),
      ]),
    });
    expect(await k(['create', '-f', '-'], { stdin: pod('false-wins', { labels: { case: 'multi', opt: 'in' } }) })).toBe('pod/false-wins created\n');
    expect(seen('false-wins')).toEqual([]);
  });

  it('a condition that errors at runtime: failurePolicy Fail refuses the request, Ignore skips the webhook', async () => {
    const erroring = [{ name: 'no-such-field', expression: 'object.spec.nope == 1' }];
    await k(['apply', '-f', '-'], {
      stdin: configuration('erroring', [
        entry('err-fail', { matchConditions: erroring }),
        entry('err-ignore', { failurePolicy: 'Ignore', matchConditions: erroring }),
      ]),
    });
    const refused = await k.result(['create', '-f', '-'], { stdin: pod('refused', { labels: { case: 'err-fail' } }) });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain(
      `Error from server (Forbidden): error when creating "STDIN": pods "refused" is forbidden: expression 'object.spec.nope == 1' resulted in error: no such key: nope`,
    );
    expect((await k.result(['-n', NS, 'get', 'pod', 'refused'])).code).not.toBe(0);
    expect(seen('refused')).toEqual([]);

    expect(await k(['create', '-f', '-'], { stdin: pod('ignored', { labels: { case: 'err-ignore' } }) })).toBe('pod/ignored created\n');
    expect(seen('ignored')).toEqual([]);
    expect(JSON.parse(await k(['-n', NS, 'get', 'pod', 'ignored', '-o', 'json'])).metadata.labels).toEqual({ case: 'err-ignore' });
    expect(kube.webhookCalls.filter((c) => c.webhook === 'err-ignore.example.com').at(-1)?.outcome).toBe(
      "ignored: expression 'object.spec.nope == 1' resulted in error: no such key: nope",
    );
  });

  it('CEL outside the subset is refused at creation with 422 Invalid naming the field', async () => {
    const r = await k.result(['create', '-f', '-'], {
      stdin: configuration('unsupported', [
        entry('unsupported', { matchConditions: [{ name: 'prefix', expression: "object.metadata.name.startsWith('x')" }] }),
      ]),
    });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(
      'The MutatingWebhookConfiguration "unsupported" is invalid: webhooks[0].matchConditions[0].expression: Invalid value: "object.metadata.name.startsWith(\'x\')": compilation failed:',
    );
    expect(r.stderr).toContain('does not implement: method call "startsWith()"');
    expect((await k.result(['get', 'mutatingwebhookconfiguration', 'unsupported'])).code).not.toBe(0);

    // The same through the API: 422, reason Invalid, with the cause on the field.
    const res = await kubeRequest(
      'POST',
      '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations',
      configuration('unsupported', [entry('unsupported', { matchConditions: [{ name: 'size', expression: 'size(object.metadata.name) == 1' }] })]),
    );
    expect(res.status).toBe(422);
    expect(res.body).toMatchObject({
      reason: 'Invalid',
      code: 422,
      details: { causes: [{ reason: 'FieldValueInvalid', field: 'webhooks[0].matchConditions[0].expression' }] },
    });
    expect(res.body.details.causes[0].message).toContain('function call "size()"');

    // An update that introduces one is refused as well.
    await k(['apply', '-f', '-'], { stdin: configuration('later', [entry('later', { matchConditions: [{ name: 'ok', expression: 'true' }] })]) });
    // kubectl apply merges matchConditions by name (patchMergeKey), like webhooks.
    const twoConditions = [
      { name: 'a', expression: 'true' },
      { name: 'b', expression: 'has(object.metadata)' },
    ];
    await k(['apply', '-f', '-'], { stdin: configuration('later', [entry('later', { matchConditions: twoConditions })]) });
    await k(['apply', '-f', '-'], {
      stdin: configuration('later', [
        entry('later', {
          matchConditions: [
            { name: 'b', expression: 'false' },
            { name: 'c', expression: 'true' },
          ],
        }),
      ]),
    });
    const merged = JSON.parse(await k(['get', 'mutatingwebhookconfiguration', 'later', '-o', 'json'])) as Obj;
    expect(merged.webhooks[0].matchConditions).toEqual([
      { name: 'b', expression: 'false' },
      { name: 'c', expression: 'true' },
    ]);
    const upd = await k.result([
      'patch',
      'mutatingwebhookconfiguration',
      'later',
      '--type=json',
      '-p',
      JSON.stringify([{ op: 'replace', path: '/webhooks/0/matchConditions/0/expression', value: 'object.metadata.name.size() > 3' }]),
    ]);
    expect(upd.stderr).toContain('webhooks[0].matchConditions[0].expression: Invalid value');
  });

  it('names and expressions are validated as kube does', async () => {
    const r = await k.result(['create', '-f', '-'], {
      stdin: configuration('names', [
        entry('names', {
          matchConditions: [
            { name: 'dup', expression: 'true' },
            { name: 'dup', expression: 'true' },
            { name: '-bad-', expression: 'true' },
            { name: '', expression: '  ' },
            { name: 'typo', expression: 'objet.metadata == null' },
            { name: 'not-bool', expression: 'object.metadata.name' },
          ],
        }),
      ]),
    });
    const e = r.stderr;
    expect(e).toContain('webhooks[0].matchConditions[1].name: Duplicate value: "dup"');
    expect(e).toContain('webhooks[0].matchConditions[2].name: Invalid value: "-bad-": name part must consist of alphanumeric characters');
    expect(e).toContain('webhooks[0].matchConditions[3].expression: Required value');
    expect(e).toContain('webhooks[0].matchConditions[3].name: Required value');
    expect(e).toContain(
      'webhooks[0].matchConditions[4].expression: Invalid value: "objet.metadata == null": compilation failed: ERROR: <input>:1:1: undeclared reference to \'objet\'',
    );
    expect(e).toContain(
      'webhooks[0].matchConditions[5].expression: Invalid value: "object.metadata.name": compilation failed: ERROR: <input>:1:1: must evaluate to one of [bool]',
    );

    const many = Array.from({ length: 65 }, (_, i) => ({ name: `c${i}`, expression: 'true' }));
    const tooMany = await k.result(['create', '-f', '-'], { stdin: configuration('many', [entry('many', { matchConditions: many })]) });
    expect(tooMany.stderr).toContain('webhooks[0].matchConditions: Too many: 65: must have at most 64 items');
    const prefixed = await k.result(['create', '-f', '-'], {
      stdin: configuration('prefixed', [entry('prefixed', { matchConditions: [{ name: 'example.com/My_name', expression: 'true' }] })]),
    });
    expect(prefixed.code).toBe(0);
  });
});

async function kubeRequest(method: string, path: string, body: unknown): Promise<{ status: number; body: Obj }> {
  const kc = JSON.parse(await k(['config', 'view', '--raw', '-o', 'json'])) as Obj;
  const user = kc.users[0].user as Obj;
  const cluster = kc.clusters[0].cluster as Obj;
  const { request } = await import('node:https');
  return new Promise((resolve, reject) => {
    const req = request(
      new URL(path, cluster.server as string),
      {
        method,
        headers: { 'content-type': 'application/json' },
        ca: Buffer.from(cluster['certificate-authority-data'] as string, 'base64'),
        ...(user.token ? { headers: { 'content-type': 'application/json', authorization: `Bearer ${user.token}` } } : {}),
        ...(user['client-certificate-data']
          ? { cert: Buffer.from(user['client-certificate-data'] as string, 'base64'), key: Buffer.from(user['client-key-data'] as string, 'base64') }
          : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Obj }));
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

describe('the CEL subset evaluator', () => {
  const vars = {
    object: {
      metadata: { name: 'p', labels: { app: 'web' }, annotations: { 'kubernetes.io/config.mirror': 'x' } },
      spec: { containers: [{ name: 'a' }], replicas: 2 },
    },
    oldObject: null,
    request: { operation: 'CREATE', namespace: 'ns' },
  };
  const run = (expr: string): unknown => {
    const r = compileCel(expr, { variables: ['object', 'oldObject', 'request'], unsupportedVariables: ['authorizer'] }).evaluate(vars);
    return 'error' in r ? `error: ${r.error}` : r.value;
  };
  const ERR = 'object.spec.nope'; // evaluates to the error "no such key: nope"

  it('&& and || absorb errors commutatively, as cel-go', () => {
    const table: [string, unknown][] = [
      [`true && true`, true],
      [`true && false`, false],
      [`false && ${ERR}`, false],
      [`${ERR} && false`, false],
      [`true && ${ERR}`, 'error: no such key: nope'],
      [`${ERR} && true`, 'error: no such key: nope'],
      [`${ERR} && object.x`, 'error: no such key: nope'],
      [`false || false`, false],
      [`true || ${ERR}`, true],
      [`${ERR} || true`, true],
      [`false || ${ERR}`, 'error: no such key: nope'],
      [`${ERR} || false`, 'error: no such key: nope'],
      [`!${ERR}`, 'error: no such key: nope'],
      [`!(${ERR} || true)`, false],
      [`true || false && false`, true], // && binds tighter
      [`(true || false) && false`, false],
    ];
    for (const [expr, want] of table) expect([expr, run(expr)]).toEqual([expr, want]);
  });

  it('in tests map keys and list elements', () => {
    expect(run("'app' in object.metadata.labels")).toBe(true);
    expect(run("'web' in object.metadata.labels")).toBe(false);
    expect(run("'kubernetes.io/config.mirror' in object.metadata.annotations")).toBe(true);
    expect(run("request.operation in ['CREATE', 'UPDATE']")).toBe(true);
    expect(run("'DELETE' in ['CREATE', \"UPDATE\"]")).toBe(false);
    expect(run('2 in [1, 2]')).toBe(true);
  });

  it('has() is false for an absent key and an error when the parent is missing', () => {
    expect(run('has(object.metadata.annotations)')).toBe(true);
    expect(run('has(object.metadata.finalizers)')).toBe(false);
    expect(run('has(object.status.phase)')).toBe('error: no such key: status');
    expect(run(MIRROR)).toBe(false);
    const plain = compileCel(MIRROR, { variables: ['object', 'oldObject', 'request'] });
    expect(plain.evaluate({ object: { metadata: { name: 'p' } } })).toEqual({ value: true });
    expect(plain.evaluate({ object: { metadata: { annotations: { other: 'x' } } } })).toEqual({ value: true });
  });

  it('selection, index, equality and null', () => {
    expect(run("object.metadata['labels'].app == 'web'")).toBe(true);
    expect(run('object.spec.containers[0].name != "b"')).toBe(true);
    expect(run('object.spec.containers[1].name == "b"')).toBe('error: index out of bounds: 1');
    expect(run('object.spec.replicas == 2')).toBe(true);
    expect(run("object.spec.replicas == '2'")).toBe(false); // heterogeneous equality
    expect(run('oldObject == null')).toBe(true);
    expect(run('oldObject.metadata == null')).toMatch(/^error: no such overload/);
  });

  it('refuses CEL outside the subset at compile time, naming the token', () => {
    const refused = (expr: string): string => {
      try {
        compileCel(expr, { variables: ['object', 'oldObject', 'request'], unsupportedVariables: ['authorizer'] });
      } catch (err) {
        if (err instanceof CelUnsupportedError) return `unsupported: ${err.message}`;
        if (err instanceof CelCompileError) return `invalid: ${err.message}`;
        throw err;
      }
      return 'accepted';
    };
    expect(refused("object.metadata.name.startsWith('x')")).toMatch(/^unsupported: .*does not implement: method call "startsWith\(\)" at <input>:1:22/);
    expect(refused('size(object.spec.containers) == 1')).toContain('function call "size()"');
    expect(refused("object.metadata.labels == {'app': 'web'}")).toContain('map literal "{"');
    expect(refused('object.spec.replicas > 1')).toContain('operator ">"');
    expect(refused('object.spec.replicas == -1')).toContain('operator "-"');
    expect(refused('has(object.x) ? true : false')).toContain('conditional operator "?"');
    expect(refused('object.spec.replicas == 1.5')).toContain('floating-point literal "1.5"');
    expect(refused("r'raw' == 'raw'")).toContain('raw string literal');
    expect(refused("authorizer.group('') == null")).toContain('variable "authorizer"');
    expect(refused('object.spec.containers.all(c, c.name == "a")')).toContain('method call "all()"');
    expect(refused('nope == 1')).toBe("invalid: ERROR: <input>:1:1: undeclared reference to 'nope' (in container '')");
    expect(refused("'a' && true")).toContain("found no matching overload for '_&&_' applied to '(string, bool)'");
    expect(refused("1 == 'a'")).toContain("found no matching overload for '_==_'");
    expect(refused('has(object)')).toContain('invalid argument to has() macro');
    expect(refused('object.metadata.name == ')).toMatch(/^invalid: ERROR: <input>:1:25: Syntax error/);
    expect(refused('true && (false')).toMatch(/^invalid: .*expecting '\)'/);
  });
});
