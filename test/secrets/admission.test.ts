// Secrets at admission, through the Kubernetes API server double as a user sees it: kubectl
// creates pods and a Deployment that name Vault references, the controller's webhook mutates
// them, and what the API server stores holds references only — never a value, and no
// `vault:` env entry — plus the socket, launcher and token the agent needs.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { silentLogger } from '#common/log.js';
import { type RunningController, startController } from '#controller/app.js';
import { controllerFeatures } from '#controller/features.js';
import { SharedTokenAgentAuthenticator } from '#controller/fleet/auth.js';
import { localAuthorizer } from '#controller/server/access.js';
import { StaticTokenAuthenticator } from '#controller/server/auth.js';

import { apiFetch, testControllerConfig, webhookConfiguration } from '../harness/controller.ts';
import { type KubeDouble, startKubeDouble } from '../harness/kube/index.ts';
import { until } from '../harness/wait.ts';

const exec = promisify(execFile);
type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
let kube: KubeDouble;
let c: RunningController;
let dir: string;
const NS = 'shop';
const TOKEN = 'admin-token';
/** Stands for a secret value: it is in the dictionary-free test world only as a reference target. */
const DB_REF = 'vault:secret/app/db#password';

async function kubectl(args: string[], stdin?: unknown): Promise<string> {
  const child = exec('kubectl', ['--kubeconfig', kube.kubeconfigPath, ...args], { timeout: 20_000 });
  if (stdin !== undefined) child.child.stdin!.end(JSON.stringify(stdin));
  return (await child).stdout;
}
const getJson = async (what: string, name: string) => JSON.parse(await kubectl(['-n', NS, 'get', what, name, '-o', 'json'])) as Obj;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'nemu-secrets-adm-'));
  kube = await startKubeDouble();
  const config = testControllerConfig({
    stateDir: dir,
    kubeconfig: kube.kubeconfigPath,
    dictionary: 'embedded',
    initImage: 'registry.local/nemutator/init:test',
  });
  c = await startController(config, {
    log: silentLogger,
    mode: 'cluster',
    apiAuth: new StaticTokenAuthenticator(TOKEN),
    authorizer: localAuthorizer,
    agentAuth: new SharedTokenAgentAuthenticator('x'),
    ...controllerFeatures(),
  });
  // a dictionary entry whose value is itself a reference (the env mutator resolves it first)
  const put = await apiFetch(c, `${c.apiUrl}/dictionary/nemu_env_apitoken`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${TOKEN}` },
    body: JSON.stringify({ value: 'vault:secret/app/api#token' }),
  });
  expect(put.status).toBe(200);
  await kubectl(['apply', '-f', '-'], webhookConfiguration(c));
  await kubectl(['create', '-f', '-'], { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
  await kubectl(['-n', NS, 'create', 'serviceaccount', 'shop-api']);
}, 60_000);
afterAll(async () => {
  await c?.stop();
  await kube?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const appContainer = () => ({
  name: 'app',
  image: 'busybox:1.36',
  command: ['/bin/server'],
  args: ['--listen', ':8080'],
  env: [
    { name: 'DB_PASSWORD', value: DB_REF },
    { name: 'API_TOKEN', value: 'nemu_env_apitoken' },
    { name: 'LOG_LEVEL', value: 'info' },
  ],
});

function expectInjected(spec: Obj, container: string) {
  const c = spec.containers.find((x: Obj) => x.name === container);
  expect(c.command).toEqual(['/nemutator/bin/nemu-exec', '--', '/bin/server', '--listen', ':8080']);
  expect(c.args).toBeUndefined();
  expect(c.env.map((e: Obj) => e.name)).toEqual(['LOG_LEVEL', 'NEMUTATOR_SOCKET', 'NEMUTATOR_TOKEN_FILE', 'NEMUTATOR_CONTAINER', 'NEMUTATOR_SECRETS_DIR']);
  expect(c.volumeMounts.map((m: Obj) => m.mountPath).filter((p: string) => p.startsWith('/nemutator/'))).toEqual([
    '/nemutator/socket',
    '/nemutator/bin',
    '/nemutator/secrets',
    '/nemutator/token',
  ]);
  expect(spec.initContainers[0]).toMatchObject({
    name: 'nemutator-init',
    image: 'registry.local/nemutator/init:test',
    command: ['/nemu-exec', 'init', '--bin', '/nemutator/bin', '--render'],
  });
  const volumes = Object.fromEntries(spec.volumes.map((v: Obj) => [v.name, v]));
  expect(volumes['nemutator-socket'].csi).toEqual({ driver: 'csi.nemutator.io', readOnly: true });
  expect(spec.initContainers[0].securityContext).toMatchObject({
    runAsNonRoot: true,
    allowPrivilegeEscalation: false,
    capabilities: { drop: ['ALL'] },
    seccompProfile: { type: 'RuntimeDefault' },
  });
  expect(volumes['nemutator-bin'].emptyDir).toMatchObject({ medium: 'Memory' });
  expect(volumes['nemutator-token'].projected.sources).toContainEqual({ serviceAccountToken: { audience: 'vault', expirationSeconds: 3600, path: 'token' } });
}

describe('secrets at admission through the API server double', () => {
  it('kubectl create of a pod with vault: env stores references only, and the launcher in front of its argv', async () => {
    await kubectl(['create', '-f', '-'], {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: 'api',
        namespace: NS,
        annotations: { 'nemutator.io/secret-file.ca.pem': 'vault:secret/app/tls#ca', 'nemutator.io/rotate-signal': 'SIGHUP' },
      },
      spec: { serviceAccountName: 'shop-api', containers: [appContainer()] },
    });
    const pod = await getJson('pod', 'api');
    expectInjected(pod.spec, 'app');
    expect(JSON.parse(pod.metadata.annotations['nemutator.io/secrets'])).toEqual({
      v: 1,
      role: 'shop-api',
      containers: { app: { env: { DB_PASSWORD: DB_REF, API_TOKEN: 'vault:secret/app/api#token' } } },
      files: { 'ca.pem': 'vault:secret/app/tls#ca' },
      rotateSignal: 'SIGHUP',
    });
    // what etcd would hold: no vault: env value, no dictionary placeholder left in the spec
    const stored = JSON.stringify(kube.get('pods', NS, 'api')!.spec);
    expect(stored).not.toContain('vault:');
    expect(stored).not.toContain('nemu_env_apitoken');
    const { body } = await (
      await apiFetch(c, `${c.apiUrl}/mutations?namespace=${NS}&name=api&kind=Pod`, { headers: { authorization: `Bearer ${TOKEN}` } })
    )
      .json()
      .then((b) => ({ body: b as Obj }));
    expect(body.items[0].verbs).toEqual(['env', 'secrets']);
  });

  it('a container without command or nemutator.io/entrypoint gets the files only, and kubectl shows why', async () => {
    const child = exec('kubectl', ['--kubeconfig', kube.kubeconfigPath, 'create', '-f', '-'], { timeout: 20_000 });
    child.child.stdin!.end(
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'web', namespace: NS, annotations: { 'nemutator.io/secret-file.token': 'vault:secret/app/api#token' } },
        spec: { containers: [{ name: 'nginx', image: 'nginx:1.27', env: [{ name: 'T', value: 'vault:secret/app/api#token' }] }] },
      }),
    );
    const out = await child;
    expect(out.stderr).toMatch(/Warning: nemutator secrets: container nginx has no command .* the launcher cannot know the image's entrypoint/);
    const pod = await getJson('pod', 'web');
    expect(pod.spec.containers[0].command).toBeUndefined();
    expect(pod.spec.containers[0].env).toBeUndefined();
    expect(pod.spec.containers[0].volumeMounts).toContainEqual({ name: 'nemutator-bin', mountPath: '/nemutator/secrets', subPath: 'secrets', readOnly: true });
    expect(pod.spec.initContainers[0].name).toBe('nemutator-init');
  });

  it('a Deployment’s template is mutated once, and the pods its ReplicaSet creates come through unchanged', async () => {
    await kubectl(['create', '-f', '-'], {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'shop', namespace: NS },
      spec: {
        replicas: 2,
        selector: { matchLabels: { app: 'shop' } },
        template: { metadata: { labels: { app: 'shop' } }, spec: { serviceAccountName: 'shop-api', containers: [appContainer()] } },
      },
    });
    const d = await getJson('deployment', 'shop');
    expectInjected(d.spec.template.spec, 'app');
    expect(JSON.stringify(d.spec.template.spec)).not.toContain('vault:');
    const pods = await until('the ReplicaSet’s two pods', async () => {
      const items = (JSON.parse(await kubectl(['-n', NS, 'get', 'pods', '-l', 'app=shop', '-o', 'json'])) as Obj).items as Obj[];
      return items.length >= 2 ? items : undefined;
    });
    expect(pods).toHaveLength(2);
    for (const p of pods) {
      expectInjected(p.spec, 'app');
      expect(p.spec.initContainers.filter((x: Obj) => x.name === 'nemutator-init')).toHaveLength(1);
      expect(JSON.parse(p.metadata.annotations['nemutator.io/secrets']).containers.app.env.DB_PASSWORD).toBe(DB_REF);
      expect(p.metadata.labels['nemutator.io/mutation']).toBeUndefined(); // nothing left to change
    }
    // an UPDATE of the stored Deployment (with the API server's defaults) is admitted without a patch
    const calls = kube.webhookCalls.length;
    await kubectl(['-n', NS, 'annotate', 'deployment', 'shop', 'example.com/touched=yes']);
    const update = kube.webhookCalls.slice(calls).filter((w) => w.operation === 'UPDATE');
    expect(update).toHaveLength(1);
    expect(update[0]!.outcome).toBe('allowed');
  });
});
