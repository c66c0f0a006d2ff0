// Secrets fail closed when a pod asks for it: the shipped webhook configuration, applied to
// the API server double as `kubectl apply -k manifests/` would, sends pods labelled
// nemutator.io/secrets=required to an entry with failurePolicy Fail. With the controller
// down, such a pod is refused (as kube-apiserver refuses it: 500 InternalError "failed calling
// webhook") while an unlabelled pod is still admitted — with its literal `vault:` value, which
// is the reason the label exists. With the controller up, the labelled pod is admitted and
// mutated. The controller's leader writes caBundle into every entry, the new one included.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ApiException, CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadKubeConfig } from '#common/kube.js';
import { silentLogger } from '#common/log.js';
import { type RunningController, servingIdentity, startController } from '#controller/app.js';
import { ClusterTlsSource } from '#controller/certs/sources.js';
import { controllerFeatures } from '#controller/features.js';
import { SharedTokenAgentAuthenticator } from '#controller/fleet/auth.js';
import { localAuthorizer } from '#controller/server/access.js';
import { StaticTokenAuthenticator } from '#controller/server/auth.js';

import { testControllerConfig } from '../harness/controller.ts';
import { type KubeDouble, startKubeDouble } from '../harness/kube/index.ts';
import { until } from '../harness/wait.ts';
import { render } from '../manifests/render.ts';

const exec = promisify(execFile);
const NS = 'shop';
const REQUIRED = 'secrets-required.pods.nemutator.io';
const ORDINARY = 'pods.nemutator.io';

type Webhook = { name: string; clientConfig: { caBundle?: string; service?: unknown }; matchConditions?: unknown };
type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

let kube: KubeDouble;
let c: RunningController | undefined;
let dir: string;
let core: CoreV1Api;

async function kubectl(args: string[], stdin?: unknown): Promise<{ code: number; stdout: string; stderr: string }> {
  const run = exec('kubectl', ['--kubeconfig', kube.kubeconfigPath, ...args], { timeout: 20_000 });
  if (stdin !== undefined) run.child.stdin!.end(JSON.stringify(stdin));
  try {
    const { stdout, stderr } = await run;
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof err.code === 'number' ? err.code : 1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}

/** A pod that reads its database password from Vault through Nemutator. */
function pod(name: string, labels: Record<string, string> = {}): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: NS, labels: { app: 'billing', ...labels } },
    spec: {
      containers: [
        { name: 'app', image: 'busybox:1.36', command: ['/bin/billing'], env: [{ name: 'DB_PASSWORD', value: 'vault:secret/billing/db#password' }] },
      ],
    },
  };
}

/** Which webhooks the double called for pods created since `from`. */
const callsSince = (from: number) => kube.webhookCalls.slice(from).map((w) => `${w.webhook}: ${w.outcome.split(':')[0]}`);

async function startTestController(): Promise<RunningController> {
  const config = testControllerConfig({ stateDir: mkdtempSync(join(dir, 'state-')) });
  // The leader's certificate source, as in a cluster: a shared CA in a Secret, caBundle patched
  // into the MutatingWebhookConfiguration `nemutator`.
  const tls = new ClusterTlsSource(loadKubeConfig(kube.kubeconfigPath)!, {
    namespace: 'nemutator',
    secretName: 'nemutator-webhook-tls',
    webhookConfigName: 'nemutator',
    caConfigMapName: 'nemutator-ca',
    identity: servingIdentity(config),
    isLeader: () => true,
    log: silentLogger,
    pollMs: 200,
  });
  const running = await startController(config, {
    log: silentLogger,
    mode: 'cluster',
    tls,
    isLeader: () => true,
    apiAuth: new StaticTokenAuthenticator('admin'),
    authorizer: localAuthorizer,
    agentAuth: new SharedTokenAgentAuthenticator('agent'),
    ...controllerFeatures(),
  });
  // The Service nemutator-controller.nemutator.svc:443 is this controller's webhook port.
  const origin = new URL(running.webhookUrl).origin;
  kube.serviceResolver = (namespace, name, port) => (namespace === 'nemutator' && name === 'nemutator-controller' && port === 443 ? origin : undefined);
  return running;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'nemu-secrets-required-'));
  kube = await startKubeDouble({ controllers: false });
  core = loadKubeConfig(kube.kubeconfigPath)!.makeApiClient(CoreV1Api);
  for (const name of ['nemutator', NS])
    expect((await kubectl(['create', '-f', '-'], { apiVersion: 'v1', kind: 'Namespace', metadata: { name } })).code).toBe(0);

  // The webhook configuration exactly as shipped (service clientConfig, no caBundle, the CEL
  // matchConditions that exclude mirror pods).
  const shipped = render().find((o) => o.kind === 'MutatingWebhookConfiguration' && o.metadata.name === 'nemutator')!;
  const webhooks = shipped.webhooks as Webhook[];
  expect(webhooks.map((w) => w.name)).toContain(REQUIRED);
  const applied = await kubectl(['apply', '-f', '-'], shipped);
  expect(applied.stderr).toBe('');

  c = await startTestController();
}, 60_000);

afterAll(async () => {
  await c?.stop();
  await kube?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Each test says whether it needs the controller up or down. */
async function controllerUp(): Promise<RunningController> {
  return (c ??= await startTestController());
}
async function controllerDown(): Promise<void> {
  await c?.stop();
  c = undefined;
}

describe('pods labelled nemutator.io/secrets=required fail closed', () => {
  it('the leader writes caBundle into every webhook entry, the fail-closed one included', async () => {
    const running = await controllerUp();
    const mwc = await until('caBundle in every entry', () => {
      const m = kube.get('mutatingwebhookconfigurations.admissionregistration.k8s.io', undefined, 'nemutator') as unknown as { webhooks: Webhook[] };
      return m.webhooks.every((w) => w.clientConfig.caBundle) ? m : undefined;
    });
    expect(mwc.webhooks.map((w) => w.name).sort()).toEqual(['deployments.nemutator.io', ORDINARY, REQUIRED]);
    for (const w of mwc.webhooks) expect(Buffer.from(w.clientConfig.caBundle!, 'base64').toString(), w.name).toBe(running.tls.caPem);
  });

  it('with the controller up, a labelled pod is admitted and mutated by the fail-closed entry only', async () => {
    await controllerUp();
    const from = kube.webhookCalls.length;
    const created = await kubectl(['create', '-f', '-'], pod('billing-up', { 'nemutator.io/secrets': 'required' }));
    expect(created.stderr).toBe('');
    expect(callsSince(from)).toEqual([`${REQUIRED}: patched`]);
    const got = JSON.parse((await kubectl(['-n', NS, 'get', 'pod', 'billing-up', '-o', 'json'])).stdout) as Obj;
    const app = got.spec.containers.find((x: Obj) => x.name === 'app');
    expect(app.command).toEqual(['/nemutator/bin/nemu-exec', '--', '/bin/billing']);
    expect((app.env ?? []).map((e: Obj) => e.name)).not.toContain('DB_PASSWORD');
    expect(got.spec.initContainers.map((x: Obj) => x.name)).toEqual(['nemutator-init']);

    const other = kube.webhookCalls.length;
    expect((await kubectl(['create', '-f', '-'], pod('report-up'))).stderr).toBe('');
    expect(callsSince(other)).toEqual([`${ORDINARY}: patched`]);
  });

  it('with the controller down, a labelled pod is refused as kube-apiserver refuses it, and not stored', async () => {
    await controllerDown();

    // kubectl shows the apiserver's Status: InternalError, the webhook named.
    const refused = await kubectl(['create', '-f', '-'], pod('billing-down', { 'nemutator.io/secrets': 'required' }));
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(
      /^Error from server \(InternalError\): error when creating "STDIN": Internal error occurred: failed calling webhook "secrets-required\.pods\.nemutator\.io": failed to call webhook: Post "https:\/\/nemutator-controller\.nemutator\.svc:443\/mutate\?timeout=5s": /,
    );

    // And a client sees the Status object itself: 500, reason InternalError.
    let status: Obj | undefined;
    try {
      await core.createNamespacedPod({ namespace: NS, body: pod('billing-down-2', { 'nemutator.io/secrets': 'required' }) });
    } catch (e) {
      expect(e).toBeInstanceOf(ApiException);
      const err = e as ApiException<unknown>;
      expect(err.code).toBe(500);
      status = (typeof err.body === 'string' ? JSON.parse(err.body) : err.body) as Obj;
    }
    expect(status).toMatchObject({ kind: 'Status', status: 'Failure', reason: 'InternalError', code: 500 });
    expect(status!.message).toMatch(/^Internal error occurred: failed calling webhook "secrets-required\.pods\.nemutator\.io": failed to call webhook: /);

    for (const name of ['billing-down', 'billing-down-2']) {
      const get = await kubectl(['-n', NS, 'get', 'pod', name]);
      expect(get.stderr, name).toMatch(/NotFound/);
    }
  });

  it('with the controller down, an unlabelled pod is still admitted, unmutated: the literal vault: value is what the label prevents', async () => {
    await controllerDown();
    const from = kube.webhookCalls.length;
    expect((await kubectl(['create', '-f', '-'], pod('report-down'))).stderr).toBe('');
    expect(callsSince(from)).toEqual([`${ORDINARY}: ignored`]);
    const got = JSON.parse((await kubectl(['-n', NS, 'get', 'pod', 'report-down', '-o', 'json'])).stdout) as Obj;
    expect(got.spec.containers[0].command).toEqual(['/bin/billing']);
    expect(got.spec.containers[0].env).toEqual([{ name: 'DB_PASSWORD', value: 'vault:secret/billing/db#password' }]);
  });

  it('once the controller is back, the labelled pod is admitted again', async () => {
    await controllerDown();
    await controllerUp();
    const from = kube.webhookCalls.length;
    expect((await kubectl(['create', '-f', '-'], pod('billing-back', { 'nemutator.io/secrets': 'required' }))).stderr).toBe('');
    expect(callsSince(from)).toEqual([`${REQUIRED}: patched`]);
  }, 30_000);
});
