// A small cluster as an operator installs Nemutator into it, for tests of the control plane's
// security: the API server double with the shipped manifests applied by
// `kubectl apply -k manifests/`, a real Prometheus with a few hours of history, the controller
// in cluster mode (TokenReview + SubjectAccessReview against the double, the webhook
// configuration pointing at it, dictionary keys for labels), and one node whose stand-in
// agent answers profile and secret commands.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { type CommandHandlers, commandRouter } from '#agent/app.js';
import type { FleetClient } from '#agent/fleet/client.js';
import { loadKubeConfig } from '#common/kube.js';
import { type Logger, silentLogger } from '#common/log.js';
import { type RunningController, startController } from '#controller/app.js';
import { controllerFeatures } from '#controller/features.js';
import { SharedTokenAgentAuthenticator } from '#controller/fleet/auth.js';
import { TokenReviewer } from '#controller/kube/tokenreview.js';
import { SubjectAccessReviewAuthorizer } from '#controller/server/access.js';
import { TokenReviewAuthenticator } from '#controller/server/auth.js';

import { generateHistory, seriesOf } from '../telemetry/fixture.ts';
import { apiFetch, testControllerConfig, webhookConfiguration } from './controller.ts';
import { standInAgent } from './fleet.ts';
import { type KubeDouble, startKubeDouble } from './kube/index.ts';
import { openMetrics } from './openmetrics.ts';
import { type PrometheusServer, startPrometheus } from './prometheus.ts';
import { until } from './wait.ts';

const exec = promisify(execFile);
type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export const AGENT_TOKEN = 'agent-token';
export const NODE = 'node-1';

export interface ClusterWorld {
  kube: KubeDouble;
  prom: PrometheusServer;
  c: RunningController;
  agent: FleetClient;
  dir: string;
  kubectl(args: string[], stdin?: unknown): Promise<string>;
  /** A REST call with `token` (none: anonymous), trusting the controller's CA. */
  call(token: string | undefined, method: string, path: string, body?: unknown): Promise<{ status: number; body: Obj }>;
  /** A REST call as the cluster admin (system:masters). */
  admin(method: string, path: string, body?: unknown): Promise<{ status: number; body: Obj }>;
  /** kubectl-creates a Deployment that the webhook mutates; the id of its mutation. */
  mutationOf(namespace: string, name: string): Promise<string>;
  /** A pod scheduled on NODE, for profiles. */
  podOnNode(namespace: string, name: string): void;
  stop(): Promise<void>;
}

export interface ClusterWorldOptions {
  /** Namespaces to create (workloads and users). */
  namespaces: string[];
  /** The workload whose usage history Prometheus holds (telemetry routes need one). */
  history: { namespace: string; deployment: string };
  agent: CommandHandlers;
  log?: Logger;
}

const deployment = (namespace: string, name: string) => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name, namespace, labels: { nemu_label_team: 'nemu_label_value_pay' } },
  spec: {
    replicas: 0,
    selector: { matchLabels: { app: name } },
    template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: 'app', image: 'busybox', command: ['sleep', 'infinity'] }] } },
  },
});

export async function startClusterWorld(opts: ClusterWorldOptions): Promise<ClusterWorld> {
  const dir = mkdtempSync(join(tmpdir(), 'nemu-cluster-'));
  const end = Math.floor(Date.now() / 1000);
  const { namespace, deployment: workload } = opts.history;
  const history = generateHistory(
    [
      {
        namespace,
        pod: `${workload}-5d9c7b-abcde`,
        container: 'app',
        workload: { kind: 'Deployment', name: workload },
        cpuLow: 0.1,
        cpuHigh: 0.5,
        memLow: 100 * 2 ** 20,
        memHigh: 150 * 2 ** 20,
      },
    ],
    end - 3 * 3600,
    end,
    60,
  );
  const [prom, kube] = await Promise.all([startPrometheus({ backfill: openMetrics(seriesOf(history, end - 3 * 3600)) }), startKubeDouble({ nodes: [NODE] })]);
  const kubectl = async (args: string[], stdin?: unknown): Promise<string> => {
    const child = exec('kubectl', ['--kubeconfig', kube.kubeconfigPath, ...args], { timeout: 30_000 });
    if (stdin !== undefined) child.child.stdin!.end(typeof stdin === 'string' ? stdin : JSON.stringify(stdin));
    return (await child).stdout;
  };
  // The shipped manifests, as an operator installs them (the roles included).
  await kubectl(['apply', '-k', 'manifests/']);
  const kc = loadKubeConfig(kube.kubeconfigPath)!;
  const config = testControllerConfig({
    stateDir: dir,
    kubeconfig: kube.kubeconfigPath,
    dictionary: 'embedded',
    prometheusUrl: prom.url,
    telemetryWindow: 3 * 3_600_000,
    telemetryRefresh: 3_600_000,
    apiRateLimit: 0,
  });
  const c = await startController(config, {
    log: opts.log ?? silentLogger,
    mode: 'cluster',
    apiAuth: new TokenReviewAuthenticator(new TokenReviewer(kc)),
    authorizer: new SubjectAccessReviewAuthorizer(kc),
    agentAuth: new SharedTokenAgentAuthenticator(AGENT_TOKEN),
    ...controllerFeatures(),
  });
  const agent = standInAgent(c, NODE, AGENT_TOKEN, { onCommand: commandRouter(opts.agent) });
  await new Promise<void>((resolve, reject) => {
    agent.once('connected', () => resolve());
    agent.once('refused', reject);
    agent.start();
  });
  const call = async (token: string | undefined, method: string, path: string, body?: unknown) => {
    const res = await apiFetch(c, c.apiUrl + path, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, body: text ? (JSON.parse(text) as Obj) : {} };
  };
  const admin = (method: string, path: string, body?: unknown) => call(kube.adminToken, method, path, body);
  await kubectl(['apply', '-f', '-'], webhookConfiguration(c));
  for (const [key, value] of Object.entries({ nemu_label_team: 'example.com/team', nemu_label_value_pay: 'payments' })) {
    const r = await admin('PUT', `/dictionary/${key}`, { value });
    if (r.status !== 200) throw new Error(`setting ${key}: ${r.status} ${JSON.stringify(r.body)}`);
  }
  for (const ns of opts.namespaces) await kubectl(['create', 'namespace', ns]);
  await until('the first telemetry refresh', async () => (await admin('GET', '/telemetry')).status === 200, 30_000, 100);
  return {
    kube,
    prom,
    c,
    agent,
    dir,
    kubectl,
    call,
    admin,
    async mutationOf(ns, name) {
      await kubectl(['create', '-f', '-'], deployment(ns, name));
      const items = await until(`the mutation of ${ns}/${name}`, async () => {
        const r = await admin('GET', `/mutations?namespace=${ns}&name=${name}&kind=Deployment`);
        return r.body.items?.length ? (r.body.items as Obj[]) : undefined;
      });
      return items[0]!.id as string;
    },
    podOnNode(ns, name) {
      kube.put({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name, namespace: ns, uid: `u-${ns}-${name}` },
        spec: { nodeName: NODE, containers: [{ name: 'app', image: 'app' }] },
      });
    },
    async stop() {
      await agent.stop();
      await c.stop();
      await Promise.all([kube.stop(), prom.stop()]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A profile answer small enough to check by eye. */
export const TINY_PROFILE: CommandHandlers['profile'] = async () => ({
  profile: { frames: [{ function: 'main.work', kind: 'go' }], samples: [{ frames: [0], count: 3 }], processes: [], hz: 49 },
});
