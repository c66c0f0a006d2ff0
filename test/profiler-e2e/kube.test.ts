// The cluster path through the Kubernetes API double: `kubectl create` a pod on node-1, a real
// Go process in a pod-shaped cgroup with that pod's UID, the controller in cluster mode
// (TokenReview for callers, SubjectAccessReview for `create profiles.nemutator.io`, the pod
// read from the API to find its node and container), the real agent of node-1, and the CLI
// run as a kubectl plugin: `kubectl nemutator flame ns/pod`.
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type RunningAgent, startAgent } from '#agent/app.js';
import { agentSchema } from '#agent/config.js';
import { loadConfig } from '#common/config.js';
import { loadKubeConfig } from '#common/kube.js';
import { silentLogger } from '#common/log.js';
import { type RunningController, startController } from '#controller/app.js';
import { SharedTokenAgentAuthenticator } from '#controller/fleet/auth.js';
import { TokenReviewer } from '#controller/kube/tokenreview.js';
import { registerProfiles } from '#controller/profiles/index.js';
import { SubjectAccessReviewAuthorizer } from '#controller/server/access.js';
import { TokenReviewAuthenticator } from '#controller/server/auth.js';

import { apiFetch, caFileOf, testControllerConfig } from '../harness/controller.ts';
import { buildGo } from '../harness/golang.ts';
import { type KubeDouble, startKubeDouble } from '../harness/kube/index.ts';
import { requireTool } from '../harness/tools.ts';
import { until } from '../harness/wait.ts';
import { HOTLOOP, type RunningHotloop, startHotloop } from './hotloop.ts';

const run = promisify(execFile);
const REPO = resolve(new URL('../..', import.meta.url).pathname);

let kube: KubeDouble;
let controller: RunningController;
let agent: RunningAgent;
let hot: RunningHotloop;
let dir: string;

async function kubectl(...args: string[]): Promise<string> {
  const { stdout } = await run('kubectl', ['--kubeconfig', kube.kubeconfigPath, ...args]);
  return stdout;
}

beforeAll(async () => {
  requireTool('bpftrace', 'bpftrace');
  dir = mkdtempSync(join(tmpdir(), 'nemu-kflame-'));
  kube = await startKubeDouble({ nodes: ['node-1'], controllers: false, kubelet: false });
  const config = testControllerConfig({ stateDir: join(dir, 'state'), kubeconfig: kube.kubeconfigPath });
  const kc = loadKubeConfig(kube.kubeconfigPath)!;
  controller = await startController(config, {
    log: silentLogger,
    mode: 'cluster',
    apiAuth: new TokenReviewAuthenticator(new TokenReviewer(kc)),
    authorizer: new SubjectAccessReviewAuthorizer(kc),
    agentAuth: new SharedTokenAgentAuthenticator('agent-secret'),
    routes: (router, parts) => void registerProfiles(router, parts),
  });

  // The workload: a pod object on node-1, and its "container" as a real cgroup + Go process.
  writeFileSync(
    join(dir, 'pod.yaml'),
    'apiVersion: v1\nkind: Pod\nmetadata: {name: api, namespace: shop}\nspec:\n  nodeName: node-1\n  containers: [{name: app, image: shop/api:1}]\n',
  );
  await kubectl('create', 'namespace', 'shop');
  await kubectl('create', '-f', join(dir, 'pod.yaml'));
  const pod = kube.get('pods', 'shop', 'api')!;
  hot = await startHotloop(await buildGo(HOTLOOP, { stripped: true }), { podUid: pod.metadata!.uid as string });
  // What the kubelet would write: the container's id.
  kube.put({
    ...pod,
    status: {
      phase: 'Running',
      containerStatuses: [{ name: 'app', containerID: `containerd://${hot.cg.containerId}`, ready: true, restartCount: 0, image: 'shop/api:1', imageID: '' }],
    },
  });

  agent = await startAgent(
    {
      ...loadConfig(agentSchema, { program: 'agent', argv: [], env: {} }).config,
      nodeName: 'node-1',
      controllerUrl: controller.fleetUrl,
      cgroupRoot: hot.cg.root,
      host: '127.0.0.1',
      metricsPort: 0,
      reportInterval: 1000,
    },
    { log: silentLogger, token: () => 'agent-secret', ca: controller.tls.caPem, metrics: false },
  );
  await until('the agent connects', () => controller.registry.get('node-1')?.connected, 10_000, 50);

  // RBAC: dev may profile in shop (RoleBinding to ClusterRole nemutator-profiler); intruder may not.
  await kubectl('apply', '-f', join(REPO, 'manifests/rbac/user-roles.yaml'));
  await kubectl('create', 'serviceaccount', 'dev', '-n', 'shop');
  await kubectl('create', 'rolebinding', 'dev-profiler', '-n', 'shop', '--clusterrole=nemutator-profiler', '--serviceaccount=shop:dev');
}, 180_000);

afterAll(async () => {
  await agent?.stop();
  await controller?.stop();
  await hot?.stop();
  await kube?.stop();
});

/** The CLI as a kubectl plugin: kubectl-nemutator on the PATH. */
async function kubectlNemutator(token: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const bin = join(dir, 'bin');
  mkdirSync(bin, { recursive: true });
  try {
    symlinkSync(join(REPO, 'bin/nemutator.js'), join(bin, 'kubectl-nemutator'));
  } catch {
    // already linked
  }
  const env = {
    ...process.env,
    PATH: `${bin}:${process.env.PATH}`,
    NEMUTATOR_SERVER: controller.apiUrl.replace(/\/api\/v1$/, ''),
    NEMUTATOR_CA_FILE: caFileOf(controller),
    NEMUTATOR_TOKEN: token,
  };
  try {
    const r = await run('kubectl', ['nemutator', ...args], { env: { ...env, KUBECONFIG: kube.kubeconfigPath }, cwd: REPO, timeout: 90_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: err.code ?? 1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}

describe('kubectl nemutator flame against the kube double', () => {
  it('profiles the pod on its node through the agent, with the stripped Go build symbolized', { timeout: 120_000 }, async () => {
    const token = await kube.issueToken({ namespace: 'shop', serviceAccount: 'dev' });
    const out = join(dir, 'api.folded');
    const r = await kubectlNemutator(token, 'flame', 'shop/api', '-c', 'app', '-t', '2s', '--hz', '49', '-o', out);
    expect(r.stderr).toContain('Sampling shop/api (app) at 49 Hz for 2 s');
    expect(r.code).toBe(0);
    const folded = readFileSync(out, 'utf8');
    expect(folded).toMatch(/^hotloop \(\d+\);.*main\.hotFunction;main\.inlinedAdd \d+$/m);
    const id = /profile ([0-9a-z-]+)\)/.exec(r.stdout)![1]!;
    const summary = (await (await apiFetch(controller, `${controller.apiUrl}/profiles/${id}`, { headers: { authorization: `Bearer ${token}` } })).json()) as {
      requestedBy: string;
      target: { node: string; podUid: string };
      processes: Array<{ isGo: boolean; stripped: boolean; container: string }>;
    };
    expect(summary.requestedBy).toBe('system:serviceaccount:shop:dev');
    expect(summary.target).toMatchObject({ node: 'node-1', podUid: hot.cg.podUid });
    expect(summary.processes).toEqual([expect.objectContaining({ isGo: true, stripped: true })]);
  });

  it('refuses a caller without the nemutator-profiler binding, and says which permission is missing', async () => {
    const intruder = await kube.issueToken({ namespace: 'shop', serviceAccount: 'intruder' });
    const res = await apiFetch(controller, `${controller.apiUrl}/profiles`, {
      method: 'POST',
      headers: { authorization: `Bearer ${intruder}`, 'content-type': 'application/json' },
      body: JSON.stringify({ namespace: 'shop', pod: 'api', seconds: 1 }),
    });
    expect(res.status).toBe(403);
    const body = (await res.json()) as { code: string; message: string };
    expect(body.code).toBe('NEMU_ERR_FORBIDDEN');
    expect(body.message).toMatch(
      /system:serviceaccount:shop:intruder may not create profiles\.nemutator\.io in namespace shop.*ClusterRole nemutator-profiler/,
    );

    const r = await kubectlNemutator(intruder, 'flame', 'shop/api', '-t', '1s', '-o', join(dir, 'x.svg'));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('NEMU_ERR_FORBIDDEN');

    // dev's binding is namespaced: another namespace is refused too.
    const dev = await kube.issueToken({ namespace: 'shop', serviceAccount: 'dev' });
    const other = await apiFetch(controller, `${controller.apiUrl}/profiles`, {
      method: 'POST',
      headers: { authorization: `Bearer ${dev}`, 'content-type': 'application/json' },
      body: JSON.stringify({ namespace: 'kube-system', pod: 'coredns', seconds: 1 }),
    });
    expect(other.status).toBe(403);
  });

  it('answers 404 for a pod that does not exist', async () => {
    const dev = await kube.issueToken({ namespace: 'shop', serviceAccount: 'dev' });
    const res = await apiFetch(controller, `${controller.apiUrl}/profiles`, {
      method: 'POST',
      headers: { authorization: `Bearer ${dev}`, 'content-type': 'application/json' },
      body: JSON.stringify({ namespace: 'shop', pod: 'nope', seconds: 1 }),
    });
    expect(res.status).toBe(404);
  });
});
