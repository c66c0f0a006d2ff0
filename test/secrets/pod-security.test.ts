// Secrets in a namespace that enforces Pod Security "restricted", end to end through the
// Kubernetes API server double (which runs the PodSecurity admission plugin after the
// mutating webhooks, as kube-apiserver does) and the real kubectl: the default injection —
// an inline csi volume for the agent's socket and a restricted init container — lets a
// Deployment's ReplicaSet create its pods; the hostPath injection is refused there, and the
// webhook's warning names the field before the ReplicaSet finds out.
//
// The admitted pod then runs with real parts: the real agent serves the secrets socket and the
// CSI node plugin, the kubelet stand-in (test/harness/kubelet.ts) publishes the pod's inline csi
// volume through the plugin's gRPC socket as kubelet does, and the stored init container and app
// run the real nemu-exec launcher in pod-shaped cgroups, reaching the agent only through the
// published target. Values are compared by hash, never printed.
import { type ChildProcess, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type RunningAgent, startAgent } from '#agent/app.js';
import { agentSchema } from '#agent/config.js';
import { mountsAt, readMountInfo } from '#agent/csi/mountinfo.js';
import { loadConfig } from '#common/config.js';
import { silentLogger } from '#common/log.js';
import { type RunningController, startController } from '#controller/app.js';
import { runCli } from '#controller/cli/main.js';
import { controllerFeatures } from '#controller/features.js';
import { SharedTokenAgentAuthenticator } from '#controller/fleet/auth.js';
import { CSI_DRIVER } from '#controller/mutators/secrets.js';
import { localAuthorizer } from '#controller/server/access.js';
import { StaticTokenAuthenticator } from '#controller/server/auth.js';

import { boundMs, medianMs } from '../harness/baseline.ts';
import { createPodCgroup, type PodCgroup, spawnInCgroup } from '../harness/cgroup.ts';
import { caFileOf, testControllerConfig, webhookConfiguration } from '../harness/controller.ts';
import { buildGo } from '../harness/golang.ts';
import { type KubeDouble, startKubeDouble } from '../harness/kube/index.ts';
import { kubectlFor, type KubectlRunner } from '../harness/kube/kubectl.ts';
import { evaluatePodSpec } from '../harness/kube/podsecurity.ts';
import { type CsiClient, csiClient, type PodOnHost, setUpPodVolumes } from '../harness/kubelet.ts';
import { capturingLogger } from '../harness/logs.ts';
import { requireTool } from '../harness/tools.ts';
import { startVaultDouble, type VaultDouble } from '../harness/vault/index.ts';
import { until } from '../harness/wait.ts';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const NS = 'shop';
const NODE = 'node-1';
const ADMIN = 'admin-' + randomBytes(8).toString('hex');
const AGENT_TOKEN = 'agent-' + randomBytes(8).toString('hex');
const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const secret = (what: string) => `${what}-${randomBytes(12).toString('hex')}`;
// every value this file puts into Vault: none may appear in any output
const values: string[] = [];
const logs: string[] = [];

let kube: KubeDouble;
let k: KubectlRunner;
let vault: VaultDouble;
let agent: RunningAgent;
let csi: CsiClient;
let launcher: string;
let dir: string;
const controllers: Record<'csi' | 'hostPath', RunningController | undefined> = { csi: undefined, hostPath: undefined };
const cgroups: PodCgroup[] = [];
const children: ChildProcess[] = [];
const hosts: PodOnHost[] = [];

async function start(socket: 'csi' | 'hostPath'): Promise<RunningController> {
  const config = testControllerConfig({
    kubeconfig: kube.kubeconfigPath,
    dictionary: 'embedded',
    initImage: 'registry.local/nemutator/init:test',
    secretsSocketVolume: socket,
    secretsCommandTimeout: 5000,
  });
  return startController(config, {
    log: silentLogger,
    mode: 'cluster',
    apiAuth: new StaticTokenAuthenticator(ADMIN),
    authorizer: localAuthorizer,
    agentAuth: new SharedTokenAgentAuthenticator(AGENT_TOKEN),
    ...controllerFeatures(),
  });
}

/** The real agent of NODE: the secrets socket (Vault behind it) and the CSI node plugin on its own socket. */
async function startNodeAgent(c: RunningController): Promise<RunningAgent> {
  const { config } = loadConfig(agentSchema, {
    program: 'test-agent',
    argv: [],
    env: {},
    defaults: {
      nodeName: NODE,
      controllerUrl: c.fleetUrl,
      kubeconfig: kube.kubeconfigPath,
      vaultAddr: vault.addr,
      socketPath: join(dir, 'run', 'agent.sock'),
      csiSocket: join(dir, 'plugins', 'csi.nemutator.io', 'csi.sock'),
      csiKubeletDir: join(dir, 'kubelet'),
      // only the forced rotation may bring the new version within this file's run
      rotationInterval: 600_000,
      secretsRateLimit: 0,
      host: '127.0.0.1',
      metricsPort: 0,
      metricsAuth: 'none',
      reportInterval: 1000,
    },
  });
  return startAgent(config, { log: capturingLogger('agent', logs), token: () => AGENT_TOKEN, ca: c.tls.caPem });
}

async function cli(...args: string[]): Promise<{ code: number; out: string }> {
  let out = '';
  const c = controllers.csi!;
  const code = await runCli([...args, '--server', c.apiUrl.replace(/\/api\/v1$/, ''), '--ca-file', caFileOf(c), '--token', ADMIN], {
    out: (s) => (out += s + '\n'),
    err: (s) => (out += s + '\n'),
  });
  logs.push(out);
  return { code, out };
}

/** The application's own part is restricted-compliant: the pod-level securityContext and its container's. */
const deployment = (name: string): Obj => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name, namespace: NS },
  spec: {
    replicas: 1,
    selector: { matchLabels: { app: name } },
    template: {
      metadata: {
        labels: { app: name },
        annotations: { 'nemutator.io/secret-file.ca.pem': 'vault:secret/app/tls#ca', 'nemutator.io/rotate-signal': 'SIGHUP' },
      },
      spec: {
        serviceAccountName: 'shop-api',
        securityContext: { runAsNonRoot: true, runAsUser: 1000, seccompProfile: { type: 'RuntimeDefault' } },
        containers: [
          {
            name: 'app',
            image: 'registry.local/shop/api:1',
            command: ['/bin/server'],
            env: [{ name: 'DB_PASSWORD', value: 'vault:secret/app/db#password' }],
            securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, readOnlyRootFilesystem: true },
          },
        ],
      },
    },
  },
});

const failedCreates = async (): Promise<Obj[]> =>
  (JSON.parse(await k(['-n', NS, 'get', 'events', '--field-selector', 'reason=FailedCreate', '-o', 'json'])) as Obj).items;
const podsOf = (name: string): Obj[] => kube.list('pods', NS).filter((p) => String(p.metadata.name).startsWith(`${name}-`));

const DB = secret('db');
const CA_V1 = secret('ca');
values.push(DB, CA_V1);

beforeAll(async () => {
  requireTool('mount', 'mount');
  requireTool('umount', 'mount');
  dir = mkdtempSync(join(tmpdir(), 'nemu-podsec-'));
  launcher = await buildGo('agent/launcher');
  kube = await startKubeDouble({ nodes: [NODE] });
  k = kubectlFor(kube.kubeconfigPath);
  vault = await startVaultDouble({
    jwks: kube.jwks,
    issuer: kube.issuer,
    roles: {
      'shop-api': {
        boundServiceAccountNames: ['shop-api'],
        boundServiceAccountNamespaces: [NS],
        audience: 'vault',
        readPaths: ['secret/data/app/*', 'secret/metadata/app/*'],
      },
    },
  });
  vault.put('secret/app/db', { password: DB });
  vault.put('secret/app/tls', { ca: CA_V1 });
  await k(['create', '-f', '-'], {
    stdin: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS, labels: { 'pod-security.kubernetes.io/enforce': 'restricted' } } },
  });
  await k(['-n', NS, 'create', 'serviceaccount', 'shop-api']);
  controllers.csi = await start('csi');
  controllers.hostPath = await start('hostPath');
  agent = await startNodeAgent(controllers.csi);
  await until('the agent connects to the fleet hub', () => controllers.csi!.hub.connectedNodes.includes(NODE));
  csi = csiClient(agent.csi!.socketPath);
}, 240_000);
afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  for (const cg of cgroups) await cg.cleanup().catch(() => undefined);
  csi?.close();
  // whatever a failed test left published under the kubelet directory
  for (const m of (await readMountInfo()).filter((e) => dir && e.mountPoint.startsWith(join(dir, 'kubelet'))).reverse()) {
    execFileSync('umount', ['-l', m.mountPoint]);
  }
  // the short symlinks standing for in-container mounts, if a test failed before teardown
  for (const v of hosts.flatMap((h) => h.csi)) rmSync(dirname(v.hostPath), { recursive: true, force: true });
  await agent?.stop();
  for (const c of Object.values(controllers)) {
    await c?.stop();
    if (c) rmSync(c.config.stateDir, { recursive: true, force: true });
  }
  await vault?.stop();
  await kube?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

let admitted: Promise<{ stdout: string; stderr: string; code: number; pod: Obj }> | undefined;
/** The Deployment "api" created through the csi controller's webhook, and its running pod as stored; the first test that asks creates it. */
const admittedApi = () =>
  (admitted ??= (async () => {
    await k(['apply', '-f', '-'], { stdin: webhookConfiguration(controllers.csi!) });
    const r = await k.result(['create', '-f', '-'], { stdin: deployment('api') });
    const [created] = await until('the ReplicaSet’s pod', () => (podsOf('api').length > 0 ? podsOf('api') : undefined));
    const name = created!.metadata.name as string;
    const pod = await until('the pod running', () => {
      const p = kube.get('pods', NS, name) as Obj | undefined;
      return p?.status?.phase === 'Running' ? p : undefined;
    });
    return { ...r, pod };
  })());

// The image's /bin/server: proves what it got by writing hashes; on SIGHUP, hashes the rendered file.
const server = (out: string) =>
  [
    '#!/bin/sh',
    `printf %s "$DB_PASSWORD" | sha256sum | cut -d' ' -f1 > ${out}/env-db.sha`,
    `sha256sum < "$NEMUTATOR_SECRETS_DIR/ca.pem" | cut -d' ' -f1 > ${out}/file-ca.sha`,
    `trap 'sha256sum < "$NEMUTATOR_SECRETS_DIR/ca.pem" | cut -d" " -f1 > ${out}/hup.sha.tmp && mv ${out}/hup.sha.tmp ${out}/hup.sha' HUP`,
    `echo started > ${out}/started`,
    'while :; do sleep 0.05; done',
  ].join('\n');

/**
 * Runs a container of the stored pod as the runtime would: its stored command and env with the
 * in-container paths mapped through its volumeMounts (then the image's own files), in a cgroup
 * named after its pod UID and container ID.
 */
async function runContainer(pod: Obj, host: PodOnHost, name: string, image: Record<string, string>): Promise<ChildProcess> {
  const init = (pod.spec.initContainers as Obj[]).some((c) => c.name === name);
  const container = (init ? pod.spec.initContainers : pod.spec.containers).find((c: Obj) => c.name === name) as Obj;
  const status = (init ? pod.status.initContainerStatuses : pod.status.containerStatuses).find((s: Obj) => s.name === name) as Obj;
  const map = (p: string) => image[p] ?? host.pathIn(container, p);
  const env: Record<string, string> = { PATH: '/usr/local/bin:/usr/bin:/bin' };
  for (const e of (container.env ?? []) as Obj[]) if (typeof e.value === 'string') env[e.name] = map(e.value);
  const argv = (container.command as string[]).map(map);
  const cg = await createPodCgroup({ podUid: pod.metadata.uid, containerId: String(status.containerID).replace(/^containerd:\/\//, '') });
  cgroups.push(cg);
  const child = spawnInCgroup(cg, argv[0]!, argv.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'] });
  for (const s of [child.stdout!, child.stderr!]) s.on('data', (d) => logs.push(`[${name}] ${String(d)}`));
  children.push(child);
  return child;
}

const exited = (child: ChildProcess) => new Promise<number | null>((r) => (child.exitCode !== null ? r(child.exitCode) : child.once('exit', r)));

describe('secrets in a namespace enforcing Pod Security "restricted"', () => {
  it('the default injection is admitted, the ReplicaSet creates its pod, and the stored pod passes restricted', async () => {
    const { pod, ...r } = await admittedApi();
    expect(r).toMatchObject({ code: 0, stdout: 'deployment.apps/api created\n' });
    expect(r.stderr).not.toContain('PodSecurity'); // neither the API server nor the webhook has anything to say
    const spec = pod.spec as Obj;
    expect(spec.volumes.find((v: Obj) => v.name === 'nemutator-socket')).toEqual({
      name: 'nemutator-socket',
      csi: { driver: 'csi.nemutator.io', readOnly: true },
    });
    expect(spec.initContainers[0]).toMatchObject({
      name: 'nemutator-init',
      securityContext: {
        runAsNonRoot: true,
        runAsUser: 65532,
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ['ALL'] },
        seccompProfile: { type: 'RuntimeDefault' },
      },
    });
    expect(spec.containers[0].command).toEqual(['/nemutator/bin/nemu-exec', '--', '/bin/server']);
    expect(spec.containers[0].env.map((e: Obj) => e.name)).not.toContain('DB_PASSWORD');
    expect(evaluatePodSpec('restricted', spec)).toBeUndefined();
    await kube.settle();
    expect(await failedCreates()).toEqual([]);
  });

  it('the admitted pod gets its values through the CSI-published socket, a forced rotation reaches it within the bound, and unpublish leaves nothing mounted', async () => {
    const { pod } = await admittedApi();
    const out = join(dir, 'out');
    mkdirSync(out, { recursive: true });
    const image = { '/nemu-exec': launcher, '/bin/server': join(dir, 'image', 'server') }; // the init image's and the app image's files
    mkdirSync(join(dir, 'image'), { recursive: true });
    writeFileSync(image['/bin/server'], server(out));
    chmodSync(image['/bin/server'], 0o755);

    // kubelet: the pod's volumes, its inline csi volume published through the agent's plugin
    const issueToken = (t: { audience?: string; expirationSeconds?: number }) =>
      kube.issueToken({
        namespace: NS,
        serviceAccount: pod.spec.serviceAccountName,
        ...(t.audience ? { audiences: [t.audience] } : {}),
        pod: { name: pod.metadata.name, uid: pod.metadata.uid },
        expirationSeconds: t.expirationSeconds ?? 3600,
      });
    const host = await setUpPodVolumes(pod, {
      client: csi,
      kubeletDir: join(dir, 'kubelet'),
      podDir: join(dir, 'pods', pod.metadata.uid),
      driver: CSI_DRIVER,
      issueToken,
    });
    hosts.push(host);
    const [published, ...others] = host.csi;
    expect(others).toEqual([]);
    expect(published!.name).toBe('nemutator-socket');
    const [mount, ...stacked] = mountsAt(await readMountInfo(), published!.target);
    expect(stacked).toEqual([]);
    expect(mount!.options).toContain('ro');
    expect(readlinkSync(published!.hostPath)).toBe(published!.target);
    // where the launchers look for the agent: the csi volume's mountPath, i.e. the published target, never the agent's own path
    for (const name of ['nemutator-init', 'app']) {
      const c = [...pod.spec.initContainers, ...pod.spec.containers].find((x: Obj) => x.name === name) as Obj;
      const socketEnv = (c.env as Obj[]).find((e) => e.name === 'NEMUTATOR_SOCKET')!.value as string;
      expect(host.pathIn(c, socketEnv)).toBe(join(published!.hostPath, 'agent.sock'));
    }

    // the init container renders the file; the app's launcher gives the process its env
    const initCode = await exited(await runContainer(pod, host, 'nemutator-init', image));
    expect(initCode).toBe(0);
    const app = await runContainer(pod, host, 'app', image);
    await until('the workload starts', () => existsSync(join(out, 'started')), 30_000);
    expect(readFileSync(join(out, 'env-db.sha'), 'utf8').trim()).toBe(sha(DB));
    expect(readFileSync(join(out, 'file-ca.sha'), 'utf8').trim()).toBe(sha(CA_V1));

    // a forced rotation, bounded as in test/secrets/end-to-end.test.ts: 2 s plus this machine's slowness now
    const bound = boundMs(2000, await medianMs(() => cli('secrets', 'rotate', 'secret/app/none'), 3));
    const next = secret('ca');
    values.push(next);
    const version = vault.put('secret/app/tls', { ca: next });
    const t0 = Date.now();
    const r = await cli('secrets', 'rotate', 'secret/app/tls');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/Rotation of secret\/app\/tls: 1\/1 node\(s\) answered, 1 new version\(s\)/);
    const secretsDir = host.pathIn(pod.spec.containers[0], '/nemutator/secrets');
    await until(
      `the rendered file holds version ${version}`,
      () => sha(readFileSync(join(secretsDir, 'ca.pem'), 'utf8')) === sha(next),
      Math.max(0, bound - (Date.now() - t0)),
    );
    await until(
      `the workload saw version ${version} on SIGHUP`,
      () => existsSync(join(out, 'hup.sha')) && readFileSync(join(out, 'hup.sha'), 'utf8').trim() === sha(next),
      Math.max(0, bound - (Date.now() - t0)),
    );

    // the pod goes away: its containers stop, then kubelet's TearDown unpublishes the volume
    app.kill('SIGTERM');
    await exited(app);
    await host.teardown();
    expect(mountsAt(await readMountInfo(), published!.target)).toEqual([]);
    expect(existsSync(published!.target)).toBe(false);
    const all = logs.join('\n');
    expect(all).toContain('"msg":"csi unpublish"');
    for (const v of values) expect(all.includes(v), 'a secret value was found in the logs').toBe(false);
  }, 120_000);

  it('with secretsSocketVolume: hostPath the webhook names the field, and the API server refuses the pods', async () => {
    await k(['apply', '-f', '-'], { stdin: webhookConfiguration(controllers.hostPath!) });
    // The controller learns namespace labels from its informer: wait (dry run, no side effects) until it knows shop's.
    const bare = {
      ...deployment('bare').spec.template,
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'bare', namespace: NS, annotations: deployment('bare').spec.template.metadata.annotations },
    };
    const refused = await until('the webhook’s Pod Security warning', async () => {
      const r = await k.result(['create', '--dry-run=server', '-f', '-'], { stdin: bare });
      return r.stderr.includes('Warning: nemutator: namespace shop') ? r : undefined;
    });
    expect(refused.code).toBe(1);
    const field = 'injected volume "nemutator-socket" uses hostPath (spec.volumes[1].hostPath); set secretsSocketVolume: csi'; // [0] is the service account's kube-api-access volume
    expect(refused.stderr).toContain(`Warning: nemutator: namespace shop enforces Pod Security "restricted": ${field}; the API server will refuse this pod`);
    expect(refused.stderr).toContain(
      'Error from server (Forbidden): error when creating "STDIN": pods "bare" is forbidden: violates PodSecurity "restricted:latest": restricted volume types (volume "nemutator-socket" uses restricted volume type "hostPath")',
    );

    const r = await k.result(['create', '-f', '-'], { stdin: deployment('legacy') });
    expect(r.code).toBe(0); // a Deployment is only warned, by both
    expect(r.stderr).toContain(
      `Warning: nemutator: namespace shop enforces Pod Security "restricted": injected volume "nemutator-socket" uses hostPath (spec.template.spec.volumes[0].hostPath)`,
    );
    expect(r.stderr).toContain(
      'Warning: would violate PodSecurity "restricted:latest": restricted volume types (volume "nemutator-socket" uses restricted volume type "hostPath")',
    );
    const [event] = await until('FailedCreate', async () => ((await failedCreates()).length > 0 ? failedCreates() : undefined));
    expect(event!.involvedObject.name).toMatch(/^legacy-/);
    expect(event!.message).toMatch(
      /^Error creating: pods "legacy-[a-z0-9]+-[a-z0-9]{5}" is forbidden: violates PodSecurity "restricted:latest": restricted volume types \(volume "nemutator-socket" uses restricted volume type "hostPath"\)$/,
    );
    expect(podsOf('legacy')).toEqual([]);
  });
});
