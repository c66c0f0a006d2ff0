// A node for the secrets tests: the kube double (pods, tokens, JWKS), the Vault double, the
// real secrets socket of the agent, and "pods" = kube objects + real cgroup v2 directories
// with processes inside. Logs are captured so tests can grep them for values.
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';

import { agentSchema } from '#agent/config.js';
import { KubeApi } from '#agent/kube/api.js';
import { NodePods } from '#agent/kube/pods.js';
import { type RunningSecrets, type SecretsConfig, startSecrets } from '#agent/secrets/index.js';
import { createLogger, silentLogger } from '#common/log.js';

import { createPodCgroup, type PodCgroup, spawnInCgroup } from '../harness/cgroup.ts';
import { type KubeDouble, startKubeDouble } from '../harness/kube/index.ts';
import { sleep } from '../harness/tools.ts';
import { startVaultDouble, type VaultDouble } from '../harness/vault/index.ts';
import { until } from '../harness/wait.ts';

export const NODE = 'node-1';
const CLIENT = fileURLToPath(new URL('./socket-client.mjs', import.meta.url));

export interface World {
  kube: KubeDouble;
  vault: VaultDouble;
  secrets: RunningSecrets;
  socketPath: string;
  dir: string;
  logs: string[];
  pod(opts: PodOptions): Promise<TestPod>;
  stop(): Promise<void>;
}

export interface PodOptions {
  name: string;
  namespace?: string;
  serviceAccount?: string;
  node?: string;
  containers?: string[];
  annotation?: unknown;
  extraAnnotations?: Record<string, string>;
  /** Leave containerStatuses empty (container id not yet known). */
  noStatus?: boolean;
}

export interface Answer {
  status: number;
  body: unknown;
}

export interface TestPod {
  uid: string;
  name: string;
  namespace: string;
  cg: PodCgroup;
  token(o?: { audiences?: string[]; expirationSeconds?: number; node?: { name: string; uid: string } }): Promise<string>;
  /** A long-lived client process inside the pod's cgroup. */
  client(socketPath?: string): Promise<PodClient>;
}

export interface PodClient {
  pid: number;
  request(r: {
    method?: string;
    path: string;
    token?: string;
    container?: string;
    body?: unknown;
    headers?: Record<string, string>;
    raw?: string;
  }): Promise<Answer>;
  watch(r: {
    token: string;
    container: string;
    path?: string;
  }): Promise<{ status: number; lines: Array<Record<string, unknown>>; next(timeoutMs?: number): Promise<Record<string, unknown>> }>;
  kill(): void;
}

export async function startWorld(overrides: Partial<SecretsConfig> = {}): Promise<World> {
  const kube = await startKubeDouble({ controllers: false, nodes: [NODE, 'node-2'] });
  const vault = await startVaultDouble({
    jwks: kube.jwks,
    issuer: kube.issuer,
    roles: {
      app: {
        boundServiceAccountNames: ['app'],
        boundServiceAccountNamespaces: ['shop'],
        audience: 'vault',
        readPaths: ['secret/data/app/*', 'secret/metadata/app/*'],
        ttlSeconds: 3600,
      },
    },
  });
  const dir = await mkdtemp(join(tmpdir(), 'nemu-secrets-'));
  const socketPath = join(dir, 'run', 'agent.sock');
  const logs: string[] = [];
  const log = createLogger({
    level: 'debug',
    destination: new Writable({
      write(chunk, _enc, cb) {
        logs.push(
          ...String(chunk)
            .split('\n')
            .filter((l) => l),
        );
        cb();
      },
    }),
  });
  const kc = KubeApi.load(kube.kubeconfigPath)!;
  const nodePods = new NodePods(KubeApi.load(kube.kubeconfigPath)!, NODE, silentLogger);
  await nodePods.start();
  const defaults = Object.fromEntries(Object.entries(agentSchema).map(([k, spec]) => [k, (spec as { default: unknown }).default])) as unknown as SecretsConfig;
  const config: SecretsConfig = {
    ...defaults,
    nodeName: NODE,
    procRoot: '/proc',
    socketPath,
    socketMode: '0666',
    vaultAddr: vault.addr,
    rotationInterval: 60_000,
    maxStaleness: 300_000,
    secretsRateLimit: 0,
    ...overrides,
  };
  const secrets = await startSecrets(config, { log, kube: kc, pods: nodePods });
  const cleanups: Array<() => Promise<void>> = [];

  const world: World = {
    kube,
    vault,
    secrets,
    socketPath,
    dir,
    logs,
    async pod(o) {
      const namespace = o.namespace ?? 'shop';
      const containers = o.containers ?? ['app'];
      const containerIds = containers.map(() => randomBytes(32).toString('hex'));
      const obj = kube.put({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          name: o.name,
          namespace,
          annotations: { ...(o.annotation !== undefined ? { 'nemutator.io/secrets': JSON.stringify(o.annotation) } : {}), ...(o.extraAnnotations ?? {}) },
        },
        spec: { nodeName: o.node ?? NODE, serviceAccountName: o.serviceAccount ?? 'app', containers: containers.map((name) => ({ name, image: 'busybox' })) },
        status: {
          phase: 'Running',
          containerStatuses: o.noStatus
            ? []
            : containers.map((name, i) => ({
                name,
                containerID: `containerd://${containerIds[i]}`,
                ready: true,
                restartCount: 0,
                image: 'busybox',
                imageID: '',
              })),
        },
      } as never);
      const uid = obj.metadata.uid as string;
      const cg = await createPodCgroup({ podUid: uid, containerId: containerIds[0]! });
      cleanups.push(() => cg.cleanup());
      const pod: TestPod = {
        uid,
        name: o.name,
        namespace,
        cg,
        token: (t = {}) =>
          kube.issueToken({
            namespace,
            serviceAccount: o.serviceAccount ?? 'app',
            audiences: t.audiences ?? ['vault'],
            pod: { name: o.name, uid },
            ...(t.node ? { node: t.node } : {}),
            expirationSeconds: t.expirationSeconds ?? 3600,
          }),
        client: (other?: string) => startClient(cg, other ?? socketPath, cleanups),
      };
      // The agent's informer sees the pod.
      if ((o.node ?? NODE) === NODE) await until(`the agent's informer sees pod ${o.name}`, () => nodePods.get(uid), 10_000, 20);
      return pod;
    },
    async stop() {
      for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
      await secrets.stop();
      await nodePods.stop();
      await vault.stop();
      await kube.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
  return world;
}

async function startClient(cg: PodCgroup, socketPath: string, cleanups: Array<() => Promise<void>>): Promise<PodClient> {
  const child: ChildProcess = spawnInCgroup(cg, process.execPath, [CLIENT, socketPath], { stdio: ['pipe', 'pipe', 'ignore'] });
  cleanups.push(async () => void child.kill('SIGKILL'));
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  const waiting = new Map<number, (o: Record<string, unknown>) => void>();
  const streams = new Map<number, Array<Record<string, unknown>>>();
  const streamWaiters = new Map<number, () => void>();
  createInterface({ input: child.stdout! }).on('line', (text) => {
    const o = JSON.parse(text) as Record<string, unknown>;
    const id = o.id as number;
    if ('line' in o) {
      streams.get(id)?.push(o.line as Record<string, unknown>);
      streamWaiters.get(id)?.();
      return;
    }
    waiting.get(id)?.(o);
    waiting.delete(id);
  });
  let next = 0;
  const send = (r: Record<string, unknown>): Promise<Record<string, unknown>> =>
    new Promise((resolve) => {
      const id = ++next;
      waiting.set(id, resolve);
      child.stdin!.write(JSON.stringify({ ...r, id }) + '\n');
    });
  // Wait until the shell has exec'd node inside the cgroup (its first answer proves it).
  await send({ path: '/healthz-probe', method: 'GET' });
  return {
    pid: child.pid!,
    async request(r) {
      const o = await send(r);
      return { status: o.status as number, body: o.body };
    },
    async watch(r) {
      const id = next + 1;
      const lines: Array<Record<string, unknown>> = [];
      streams.set(id, lines);
      const first = await send({ path: `/v1/secrets/watch${r.path ? `?path=${r.path}` : ''}`, token: r.token, container: r.container, watch: true });
      let read = 0;
      return {
        status: first.status as number,
        lines,
        async next(timeoutMs = 5000) {
          const deadline = Date.now() + timeoutMs;
          while (lines.length <= read) {
            if (Date.now() > deadline) throw new Error(`no watch line within ${timeoutMs} ms`);
            await new Promise<void>((res) => {
              streamWaiters.set(id, res);
              setTimeout(res, 50);
            });
          }
          return lines[read++]!;
        },
      };
    },
    kill: () => void child.kill('SIGKILL'),
  };
}

export { sleep, writeFile };
