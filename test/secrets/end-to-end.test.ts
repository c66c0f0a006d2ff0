// Secrets end to end with real parts: the controller (webhook, REST, fleet hub), the real
// agent (secrets socket, Vault login as the pod, rotation watcher) connected to it, the kube
// double (kubectl, admission webhooks, the kubelet stand-in, tokens, JWKS, RBAC), the Vault
// double, and the real nemu-exec launcher (built with golang-go) running as the pod's
// processes in its pod-shaped cgroup v2 directories.
//
// What a pod's containers run is what the API server stored: the init container's command
// and the app's wrapped command, with the in-pod paths (/nemutator/...) mapped to temporary
// directories standing in for the pod's volumes. Values are compared by hash, never printed.
import { type ChildProcess, execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type RunningAgent, startAgent } from '#agent/app.js';
import { agentSchema } from '#agent/config.js';
import { loadConfig } from '#common/config.js';
import { type RunningController, startController } from '#controller/app.js';
import { runCli } from '#controller/cli/main.js';
import { controllerFeatures } from '#controller/features.js';
import { SharedTokenAgentAuthenticator } from '#controller/fleet/auth.js';
import { localAuthorizer } from '#controller/server/access.js';
import { StaticTokenAuthenticator } from '#controller/server/auth.js';

import { boundMs, medianMs } from '../harness/baseline.ts';
import { createPodCgroup, type PodCgroup, spawnInCgroup } from '../harness/cgroup.ts';
import { apiFetch, caFileOf, testControllerConfig } from '../harness/controller.ts';
import { buildGo } from '../harness/golang.ts';
import { type KubeDouble, startKubeDouble } from '../harness/kube/index.ts';
import { capturingLogger } from '../harness/logs.ts';
import { sleep } from '../harness/tools.ts';
import { startVaultDouble, type VaultDouble } from '../harness/vault/index.ts';

const exec = promisify(execFile);
type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const secret = (what: string) => `${what}-${randomBytes(12).toString('hex')}`;

const NODE = 'node-1';
const NS = 'shop';
const ADMIN = 'admin-' + randomBytes(8).toString('hex');
const AGENT_TOKEN = 'agent-' + randomBytes(8).toString('hex');
const ROTATION_INTERVAL_MS = 3000;

// every value this test ever puts into Vault: none may appear in any output
const values: string[] = [];
const logs: string[] = [];
const capture = (name: string) => capturingLogger(name, logs);

let kube: KubeDouble;
let vault: VaultDouble;
let c: RunningController;
let agent: RunningAgent;
let launcher: string;
let dir: string;
const cgroups: PodCgroup[] = [];
const children: ChildProcess[] = [];

async function kubectl(args: string[], stdin?: unknown): Promise<{ stdout: string; stderr: string }> {
  const child = exec('kubectl', ['--kubeconfig', kube.kubeconfigPath, ...args], { timeout: 20_000 });
  if (stdin !== undefined) child.child.stdin!.end(JSON.stringify(stdin));
  const r = await child;
  logs.push(r.stdout, r.stderr);
  return r;
}

async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCli([...args, '--server', c.apiUrl.replace(/\/api\/v1$/, ''), '--ca-file', caFileOf(c), '--token', ADMIN], {
    out: (s) => (out += s + '\n'),
    err: (s) => (err += s + '\n'),
  });
  logs.push(out, err);
  return { code, out, err };
}

async function until<T>(what: string, timeoutMs: number, probe: () => T | undefined | Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(25);
  }
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'nemu-secrets-e2e-'));
  launcher = await buildGo('agent/launcher');
  kube = await startKubeDouble({ nodes: [NODE] });
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

  const config = testControllerConfig({
    stateDir: join(dir, 'controller'),
    kubeconfig: kube.kubeconfigPath,
    dictionary: 'embedded',
    secretsCommandTimeout: 5000,
  });
  c = await startController(config, {
    log: capture('controller'),
    mode: 'cluster',
    apiAuth: new StaticTokenAuthenticator(ADMIN),
    authorizer: localAuthorizer,
    agentAuth: new SharedTokenAgentAuthenticator(AGENT_TOKEN),
    ...controllerFeatures(),
  });

  const agentConfig = loadConfig(agentSchema, {
    program: 'test-agent',
    argv: [],
    env: {},
    defaults: {
      nodeName: NODE,
      controllerUrl: c.fleetUrl,
      kubeconfig: kube.kubeconfigPath,
      vaultAddr: vault.addr,
      socketPath: join(dir, 'run', 'agent.sock'),
      socketMode: '0666',
      rotationInterval: ROTATION_INTERVAL_MS,
      secretsRateLimit: 0,
      host: '127.0.0.1',
      metricsPort: 0,
      // the leak check reads the page itself; who may read it is test/agent/metrics-auth.test.ts's business
      metricsAuth: 'none',
      reportInterval: 1000,
    },
  }).config;
  agent = await startAgent(agentConfig, { log: capture('agent'), token: () => AGENT_TOKEN, ca: c.tls.caPem });
  await until('the agent connects to the fleet hub', 10_000, () => c.hub.connectedNodes.includes(NODE));

  await kubectl(['apply', '-f', '-'], {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: { name: 'nemutator' },
    webhooks: [
      {
        name: 'mutate.nemutator.io',
        clientConfig: { url: c.webhookUrl, caBundle: Buffer.from(c.tls.caPem).toString('base64') },
        rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'] }],
        admissionReviewVersions: ['v1'],
        sideEffects: 'NoneOnDryRun',
        failurePolicy: 'Fail',
        reinvocationPolicy: 'IfNeeded',
        timeoutSeconds: 5,
      },
    ],
  });
  await kubectl(['create', 'namespace', NS]);
  await kubectl(['-n', NS, 'create', 'serviceaccount', 'shop-api']);
}, 240_000);

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  for (const cg of cgroups) await cg.cleanup().catch(() => undefined);
  await agent?.stop();
  await c?.stop();
  await vault?.stop();
  await kube?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The pod's volumes on this machine, and the in-pod paths mapped onto them. */
function podVolumes(name: string) {
  const root = join(dir, 'pods', name);
  const v = { bin: join(root, 'bin'), secrets: join(root, 'bin', 'secrets'), token: join(root, 'token', 'token'), out: join(root, 'out') };
  for (const d of [v.bin, v.secrets, join(root, 'token'), v.out]) mkdirSync(d, { recursive: true });
  const map = (s: string) =>
    s
      .replace('/nemutator/socket/agent.sock', agent.secrets!.server.path)
      .replace('/nemutator/token/token', v.token)
      .replace('/nemutator/secrets', v.secrets)
      .replace('/nemutator/bin', v.bin);
  return { ...v, map };
}

/** Runs a container of the stored pod: its command (paths mapped) in its own cgroup, with its env. */
function runContainer(
  pod: Obj,
  container: Obj,
  status: Obj,
  vols: ReturnType<typeof podVolumes>,
  binary: (argv0: string) => string,
  cg: PodCgroup,
): ChildProcess {
  const env: Record<string, string> = { PATH: '/usr/local/bin:/usr/bin:/bin' };
  for (const e of container.env ?? []) if (typeof e.value === 'string') env[e.name] = vols.map(e.value);
  const argv = (container.command as string[]).map(vols.map);
  const child = spawnInCgroup(cg, binary(argv[0]!), argv.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'] });
  for (const s of [child.stdout!, child.stderr!]) s.on('data', (d) => logs.push(`[${pod.metadata.name}/${container.name} ${status.name}] ${String(d)}`));
  children.push(child);
  return child;
}

/** The running pod of this file, what the API server stored and what its containers proved on start. */
interface ShopApi {
  pod: Obj;
  vols: ReturnType<typeof podVolumes>;
  createdOut: string;
  initCode: number | null;
  /** Hash of db.pass as the init container rendered it, before any rotation. */
  initRenderedSha: string;
  app: Obj;
}

// the workload: proves what it got by writing hashes; on SIGHUP, hashes the rendered file
const script = (out: string) =>
  [
    `printf %s "$DB_PASSWORD" | sha256sum | cut -d' ' -f1 > ${out}/env-db.sha`,
    `printf %s "$API_TOKEN" | sha256sum | cut -d' ' -f1 > ${out}/env-api.sha`,
    `trap 'sha256sum < "$NEMUTATOR_SECRETS_DIR/db.pass" | cut -d" " -f1 > ${out}/hup.sha.tmp && mv ${out}/hup.sha.tmp ${out}/hup.sha' HUP`,
    `echo started > ${out}/started`,
    'while :; do sleep 0.05; done',
  ].join('\n');

const DB_V1 = secret('db');
const API = secret('api');
values.push(DB_V1, API);

/** kubectl create of the pod, then its init container and its app run as the kubelet would. */
async function startShopApi(): Promise<ShopApi> {
  vault.put('secret/app/db', { password: DB_V1 });
  vault.put('secret/app/api', { token: API });
  const vols = podVolumes('shop-api');
  const created = await kubectl(['create', '-f', '-'], {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: 'shop-api',
      namespace: NS,
      annotations: { 'nemutator.io/secret-file.db.pass': 'vault:secret/app/db#password', 'nemutator.io/rotate-signal': 'SIGHUP' },
    },
    spec: {
      serviceAccountName: 'shop-api',
      containers: [
        {
          name: 'app',
          image: 'busybox:1.36',
          command: ['/bin/sh', '-c', script(vols.out)],
          env: [
            { name: 'DB_PASSWORD', value: 'vault:secret/app/db#password' },
            { name: 'API_TOKEN', value: 'vault:secret/app/api#token' },
          ],
        },
      ],
    },
  });
  const pod = await until('the kubelet stand-in runs the pod', 10_000, () => {
    const p = kube.get('pods', NS, 'shop-api') as Obj | undefined;
    return p?.status?.phase === 'Running' ? p : undefined;
  });
  // the kubelet projects the token the stored volume asks for
  const projected = pod.spec.volumes.find((v: Obj) => v.name === 'nemutator-token').projected.sources[0].serviceAccountToken;
  writeFileSync(
    vols.token,
    await kube.issueToken({
      namespace: NS,
      serviceAccount: 'shop-api',
      audiences: [projected.audience],
      pod: { name: 'shop-api', uid: pod.metadata.uid },
      expirationSeconds: projected.expirationSeconds,
    }),
  );
  const idOf = (s: Obj) => String(s.containerID).replace(/^containerd:\/\//, '');

  // init: the init image's /nemu-exec, with the stored command
  const init = pod.spec.initContainers.find((x: Obj) => x.name === 'nemutator-init');
  const initStatus = pod.status.initContainerStatuses.find((s: Obj) => s.name === 'nemutator-init');
  const initCg = await createPodCgroup({ podUid: pod.metadata.uid, containerId: idOf(initStatus) });
  cgroups.push(initCg);
  const initProc = runContainer(pod, init, initStatus, vols, (argv0) => (argv0 === '/nemu-exec' ? launcher : argv0), initCg);
  const initCode = await new Promise<number | null>((r) => initProc.once('exit', r));
  const dbPass = join(vols.secrets, 'db.pass');
  const initRenderedSha = existsSync(dbPass) ? sha(readFileSync(dbPass, 'utf8')) : '';

  // app: the launcher the init container copied, with the stored (wrapped) command
  const app = pod.spec.containers.find((x: Obj) => x.name === 'app');
  const appStatus = pod.status.containerStatuses.find((s: Obj) => s.name === 'app');
  const appCg = await createPodCgroup({ podUid: pod.metadata.uid, containerId: idOf(appStatus) });
  cgroups.push(appCg);
  if (initCode === 0) {
    runContainer(pod, app, appStatus, vols, (argv0) => argv0, appCg);
    await until('the workload starts', 15_000, () => existsSync(join(vols.out, 'started')));
  }
  return { pod, vols, createdOut: created.stdout, initCode, initRenderedSha, app };
}

let shopApi: Promise<ShopApi> | undefined;
/** Each test that needs the running pod asks for it; the first one starts it. */
const runningShopApi = () => (shopApi ??= startShopApi());

/** A forced rotation of a path no pod holds, through the CLI, controller and agent: this machine's speed right now. */
const noopRotationMs = () => medianMs(() => cli('secrets', 'rotate', 'secret/app/none'), 3);

describe('a pod that reads secrets, from kubectl create to rotation', () => {
  it('kubectl create stores no value; the init container renders the files; the launcher gives the app its env from the agent', async () => {
    const { pod, vols, createdOut, initCode, initRenderedSha, app } = await runningShopApi();
    expect(createdOut).toContain('pod/shop-api created');
    const stored = JSON.stringify(pod);
    for (const v of values) expect(stored).not.toContain(v);
    expect(JSON.stringify(pod.spec.containers)).not.toContain('vault:');
    expect(initCode).toBe(0);
    expect(existsSync(join(vols.bin, 'nemu-exec'))).toBe(true);
    expect(initRenderedSha).toBe(sha(DB_V1));
    expect(app.command.slice(0, 2)).toEqual(['/nemutator/bin/nemu-exec', '--']);
    expect(readFileSync(join(vols.out, 'env-db.sha'), 'utf8').trim()).toBe(sha(DB_V1));
    expect(readFileSync(join(vols.out, 'env-api.sha'), 'utf8').trim()).toBe(sha(API));
  }, 60_000);

  it('a forced rotation reaches the rendered file and the workload (SIGHUP) within 2 s on an idle machine, and its ack shows in secrets status', async () => {
    const { vols } = await runningShopApi();
    const bound = boundMs(2000, await noopRotationMs());
    const next = secret('db');
    values.push(next);
    const version = vault.put('secret/app/db', { password: next });
    const t0 = Date.now();
    const r = await cli('secrets', 'rotate', 'secret/app/db');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/Rotation of secret\/app\/db: 1\/1 node\(s\) answered, 1 new version\(s\)/);
    await until(
      `the rendered file holds version ${version}`,
      bound - (Date.now() - t0),
      () => sha(readFileSync(join(vols.secrets, 'db.pass'), 'utf8')) === sha(next),
    );
    await until(
      `the workload saw version ${version} on SIGHUP`,
      bound - (Date.now() - t0),
      () => existsSync(join(vols.out, 'hup.sha')) && readFileSync(join(vols.out, 'hup.sha'), 'utf8').trim() === sha(next),
    );
    const status = await until(`the ack of version ${version} shows in status`, bound, async () => {
      const s = await cli('secrets', 'status', 'secret/app/db', '-o', 'json');
      const holders = (JSON.parse(s.out) as { holders: Obj[] }).holders.filter((h) => h.pod === 'shop-api' && h.container === 'app');
      return holders.length > 0 && holders.every((h) => h.ackedVersion === version) ? holders : undefined;
    });
    expect(status[0]).toMatchObject({
      namespace: NS,
      pod: 'shop-api',
      container: 'app',
      path: 'secret/app/db',
      version,
      ackedVersion: version,
      current: true,
      node: NODE,
    });
    const table = await cli('secrets', 'status', 'secret/app/db');
    expect(table.out).toMatch(new RegExp(`shop\\s+shop-api\\s+app\\s+secret/app/db\\s+${version}\\s+${version}\\s+\\S+\\s+node-1`));
  }, 60_000);

  it('a new version is picked up without forcing, within the rotation interval', async () => {
    const { vols } = await runningShopApi();
    const bound = boundMs(ROTATION_INTERVAL_MS * 1.1 + 1500, await noopRotationMs());
    const next = secret('db');
    values.push(next);
    vault.put('secret/app/db', { password: next });
    const t0 = Date.now();
    await until('the rendered file holds the new version', bound, () => sha(readFileSync(join(vols.secrets, 'db.pass'), 'utf8')) === sha(next));
    await until(
      'the workload saw the new version',
      bound - (Date.now() - t0),
      () => existsSync(join(vols.out, 'hup.sha')) && readFileSync(join(vols.out, 'hup.sha'), 'utf8').trim() === sha(next),
    );
  }, 60_000);

  it('no secret value appears in any log line, error, metric, stored object or mutation log entry', async () => {
    await runningShopApi();
    const fetchText = async (url: string) => (await apiFetch(c, url, { headers: { authorization: `Bearer ${ADMIN}` } })).text();
    const outputs = [...logs];
    const agentPage = await fetchText(agent.metricsUrl!);
    expect(agentPage).toContain('# TYPE nemutator_agent_secrets_rotation_errors_total counter');
    outputs.push(agentPage);
    writeFileSync(join(dir, 'ca.crt'), c.tls.caPem);
    const metrics = await exec('curl', [
      '-sf',
      '--cacert',
      join(dir, 'ca.crt'),
      '-H',
      `Authorization: Bearer ${ADMIN}`,
      c.webhookUrl.replace(/\/mutate$/, '/metrics'),
    ]);
    expect(metrics.stdout).toContain('nemutator_');
    outputs.push(metrics.stdout);
    outputs.push(await fetchText(`${c.apiUrl}/mutations?namespace=${NS}`));
    outputs.push(await fetchText(`${c.apiUrl}/secrets/status`));
    outputs.push((await kubectl(['-n', NS, 'get', 'pod', 'shop-api', '-o', 'yaml'])).stdout);
    // and a rotation of a path no pod holds
    outputs.push((await cli('secrets', 'rotate', 'secret/app/none')).out);
    expect(logs.some((l) => l.includes('"audit":"read"'))).toBe(true);
    const all = outputs.join('\n');
    expect(all.length).toBeGreaterThan(1000);
    for (const v of values) expect(all.includes(v), 'a secret value was found in the outputs').toBe(false);
  });
});
