// Bad-neighbour scores, their labels and the opt-in to the Nemutator-aware scheduler, end to end:
// - a controller (admission chain of controllerFeatures, REST API) against the Kubernetes API
//   server double, with a webhook configuration pointing the double at it;
// - an agent (the real FleetClient) reporting generated usage through the real fleet link
//   (WSS + protobuf NodeReports): on node-1 a noisy Deployment far above its CPU request while
//   its co-residents are CFS-throttled and the node's CPU PSI is up; on node-2 quiet pods;
// - the scorer, the label writer and the mutation log built from the controller's parts,
//   with the writer's clock in the test's hands (rate limit), rolled back through the REST API;
// - the scheduler component rendered with `kubectl kustomize`.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';

import type { FleetClient } from '#agent/fleet/client.js';
import { loadKubeConfig } from '#common/kube.js';
import { silentLogger } from '#common/log.js';
import { SkipRules } from '#controller/admission/skip-rules.js';
import { type RunningController, startController } from '#controller/app.js';
import { runCli } from '#controller/cli/main.js';
import { controllerFeatures } from '#controller/features.js';
import { SharedTokenAgentAuthenticator } from '#controller/fleet/auth.js';
import { ClusterModel } from '#controller/model/model.js';
import { clusterFromConfig } from '#controller/mutations/cluster.js';
import { MutationLog } from '#controller/mutations/log.js';
import { registerMutationRoutes } from '#controller/mutations/routes.js';
import {
  excludedNamespaces,
  labelTargetsFromModel,
  type NeighbourFeature,
  neighboursFeature,
  registerNeighbourRoutes,
} from '#controller/scheduler/neighbours-feature.js';
import { NEIGHBOUR_LABELS, NeighbourLabelWriter } from '#controller/scheduler/neighbours-labels.js';
import { localAuthorizer } from '#controller/server/access.js';
import { StaticTokenAuthenticator } from '#controller/server/auth.js';
import type { Authenticator } from '#controller/server/router.js';
import type { INodeReport, IPodUsage } from '#proto/codec.js';

import { testControllerConfig, webhookConfiguration } from '../harness/controller.ts';
import { standInAgent } from '../harness/fleet.ts';
import { type KubeDouble, startKubeDouble } from '../harness/kube/index.ts';
import { kubectlFor, type KubectlRunner } from '../harness/kube/kubectl.ts';
import { until } from '../harness/wait.ts';
import { componentNames, render } from '../manifests/render.ts';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const ADMIN = 'admin-token-for-neighbours';
const NOBODY = 'token-of-someone-without-rights';
const AGENT_TOKEN = 'agent-token-for-neighbours';
const NS = 'shop';

let kube: KubeDouble;
let k: KubectlRunner;
let c: RunningController;
let model: ClusterModel;
let feature: NeighbourFeature;
let mutationLog: MutationLog;
let skipRules: SkipRules;
const agents: FleetClient[] = [];

const deployment = (name: string, node: string, cpu: { request: string; limit?: string }, extra: { annotations?: Record<string, string> } = {}): Obj => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name, namespace: NS, ...(extra.annotations ? { annotations: extra.annotations } : {}) },
  spec: {
    replicas: name === 'noisy' ? 1 : 2,
    selector: { matchLabels: { app: name } },
    template: {
      metadata: { labels: { app: name }, ...(extra.annotations ? { annotations: extra.annotations } : {}) },
      spec: {
        nodeName: node,
        containers: [{ name: 'app', image: 'nginx:1.27', resources: { requests: { cpu: cpu.request }, ...(cpu.limit ? { limits: { cpu: cpu.limit } } : {}) } }],
      },
    },
  },
});

/** Generated usage: what each pod of `node` does in one report interval (10 CFS periods). */
function usageOf(app: string): { cpu: number; throttledPerInterval: number; ws: number } {
  if (app === 'noisy') return { cpu: 1.8, throttledPerInterval: 0, ws: 300 << 20 };
  if (app === 'victim') return { cpu: 0.45, throttledPerInterval: 6, ws: 100 << 20 };
  return { cpu: 0.05, throttledPerInterval: 0, ws: 50 << 20 };
}

/** One agent per node, reporting the pods the double placed there, with cumulative counters. */
function agentFor(node: string): FleetClient {
  const counters = new Map<string, { periods: number; throttled: number }>();
  const collect = async (): Promise<INodeReport> => {
    const pods: IPodUsage[] = kube
      .list('pods', NS)
      .filter((p) => (p['spec'] as Obj).nodeName === node && (p['status'] as Obj | undefined)?.phase === 'Running')
      .map((p) => {
        const app = (p.metadata.labels as Record<string, string>).app!;
        const u = usageOf(app);
        const id = `cid-${p.metadata.uid as string}`;
        const n = counters.get(id) ?? { periods: 0, throttled: 0 };
        n.periods += 10;
        n.throttled += u.throttledPerInterval;
        counters.set(id, n);
        return {
          uid: p.metadata.uid as string,
          namespace: NS,
          name: p.metadata.name as string,
          qos: 'burstable',
          containers: [
            { id, name: 'app', cpuUsageCores: u.cpu, cpuPeriodsTotal: n.periods, cpuThrottledPeriodsTotal: n.throttled, memoryWorkingSetBytes: u.ws },
          ],
        };
      });
    const busy = node === 'node-1';
    return {
      nodeName: node,
      timeUnixMs: Date.now(),
      node: {
        cpuCores: 4,
        cpuUsageCores: busy ? 2.8 : 0.2,
        memoryTotalBytes: 8 << 30,
        cpuPressure: { someAvg10: busy ? 35 : 0 },
        memoryPressure: { someAvg10: busy ? 5 : 0 },
      },
      pods,
    };
  };
  return standInAgent(c, node, AGENT_TOKEN, { collect, reportIntervalMs: 100 });
}

const authenticator: Authenticator = {
  async authenticate(header) {
    return (
      (await new StaticTokenAuthenticator(ADMIN).authenticate(header)) ??
      (await new StaticTokenAuthenticator(NOBODY, { username: 'nobody', groups: ['system:authenticated'] }).authenticate(header))
    );
  },
};

async function api(token: string, method: string, path: string): Promise<{ status: number; body: Obj }> {
  const res = await fetch(c.apiUrl + path, { method, headers: { authorization: `Bearer ${token}` } });
  return { status: res.status, body: (await res.json()) as Obj };
}

const labelsOf = (resource: string, name: string): Record<string, string> => (kube.get(resource, NS, name)?.metadata.labels as Record<string, string>) ?? {};
const neighbourLabelsOf = (resource: string, name: string) =>
  Object.fromEntries(Object.entries(labelsOf(resource, name)).filter(([key]) => key.startsWith('nemutator.io/neighbour-')));
const podsOf = (app: string) => kube.list('pods', NS).filter((p) => (p.metadata.labels as Record<string, string>).app === app);
const patchesSince = (n: number) => kube.requests.slice(n).filter((r) => r.method === 'PATCH' && r.path.includes(`/namespaces/${NS}/`));

/** A label writer of its own for each test, with the test's clock. */
function writer(clock: { now: number }, writesPerMinute: number, excluded = new Set<string>()): NeighbourLabelWriter {
  return new NeighbourLabelWriter({
    cluster: clusterFromConfig(kube.kubeconfigPath)!,
    mutationLog,
    skipRules,
    log: silentLogger,
    writesPerMinute,
    isLeader: () => true,
    targets: labelTargetsFromModel(model, excluded),
    scores: () => feature.scorer,
    now: () => clock.now,
  });
}

/** Every object of the namespace without neighbour labels, as the model sees it too: each test starts there. */
async function clearLabels(): Promise<void> {
  const keys = Object.values(NEIGHBOUR_LABELS).map((key) => `${key}-`);
  await k(['label', 'deployments,pods', '--all', '-n', NS, '--overwrite', ...keys]);
  await until('the model sees no neighbour label', () =>
    [...model.list('pods'), ...model.list('deployments')].every(
      (o) => !Object.keys(o.metadata?.labels ?? {}).some((key) => key.startsWith('nemutator.io/neighbour-')),
    ),
  );
  for (const r of await skipRules.list(NS)) await skipRules.remove(r.namespace, r.kind, r.name);
}

async function createWorld(): Promise<void> {
  kube = await startKubeDouble({ nodes: ['node-1', 'node-2'] });
  k = kubectlFor(kube.kubeconfigPath);
  for (const [name, labels] of [
    [NS, {}],
    ['optin', { 'nemutator.io/scheduler': 'enabled' }],
    ['plain', {}],
  ] as const) {
    await k(['apply', '-f', '-'], { stdin: { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } } });
  }
  const config = testControllerConfig({ kubeconfig: kube.kubeconfigPath, optInSchedulerName: 'nemutator-scheduler', neighbourWindow: 600_000 });
  const features = controllerFeatures();
  c = await startController(config, {
    log: silentLogger,
    mode: 'local',
    apiAuth: authenticator,
    authorizer: localAuthorizer,
    agentAuth: new SharedTokenAgentAuthenticator(AGENT_TOKEN),
    admission: features.admission,
    routes(router, parts) {
      model = new ClusterModel(kubeConfigOf(), silentLogger);
      mutationLog = new MutationLog(parts.store, silentLogger);
      skipRules = new SkipRules(parts.store);
      feature = neighboursFeature({ config, registry: parts.registry, log: silentLogger, isLeader: () => true, model, mutationLog, skipRules });
      registerNeighbourRoutes(router, feature);
      registerMutationRoutes(router, { log: mutationLog, skipRules, config, logger: silentLogger, cluster: clusterFromConfig(kube.kubeconfigPath)! });
    },
  });
  await model.start();
  await k(['apply', '-f', '-'], { stdin: webhookConfiguration(c) });
}

/** The same cluster the controller's features use. */
const kubeConfigOf = () => loadKubeConfig(kube.kubeconfigPath)!;

beforeAll(async () => {
  await createWorld();
  await k(['apply', '-f', '-'], { stdin: deployment('noisy', 'node-1', { request: '100m' }) });
  await k(['apply', '-f', '-'], { stdin: deployment('victim', 'node-1', { request: '500m', limit: '500m' }) });
  await k(['apply', '-f', '-'], { stdin: deployment('calm', 'node-2', { request: '100m' }) });
  await k(['apply', '-f', '-'], {
    stdin: deployment('hidden', 'node-2', { request: '100m' }, { annotations: { 'nemutator.io/skip-mutation': 'neighbours' } }),
  });
  await until('7 pods running', () => kube.list('pods', NS).filter((p) => (p['status'] as Obj | undefined)?.phase === 'Running').length === 7, 20_000);
  await until('the model has the pods', () => model.list('pods').filter((p) => p.metadata?.namespace === NS).length === 7);
  for (const node of ['node-1', 'node-2']) {
    const agent = agentFor(node);
    agents.push(agent);
    agent.start();
  }
  // Throttling is a counter: scores need two reports of each node, then a few more for the mean.
  await until(
    'every pod scored',
    () => feature.scorer.result().workloads.reduce((n, w) => n + w.pods.length, 0) === 7 && feature.scorer.history.nodes(Date.now()) === 2,
    15_000,
  );
  await until('the noisy workload is scored high', () => feature.scorer.result().lookup.forWorkload(NS, 'Deployment', 'noisy')?.worst === 100, 15_000);
}, 120_000);

afterAll(async () => {
  for (const a of agents) await a.stop();
  await model?.stop();
  await c?.stop();
  await kube?.stop();
});

describe("bad-neighbour scores from the agents' reports", () => {
  it('ranks the noisy workload that throttles its co-residents worst, and its pod too', () => {
    const r = feature.scorer.result();
    const worst = r.workloads.map((w) => [w.workload.name, w.scores.worst] as const);
    expect(worst[0]).toEqual(['noisy', 100]);
    for (const [name, score] of worst.slice(1)) expect(score, name).toBeLessThan(40);
    // Its victims are throttled, not throttling: they score low although their node suffers.
    expect(feature.scorer.forWorkload(NS, 'Deployment', 'victim')!.worst).toBeLessThan(feature.scorer.forWorkload(NS, 'Deployment', 'noisy')!.worst);
    const noisy = r.workloads[0]!;
    expect(noisy.explain.worst.signals.inflictedThrottling).toBeGreaterThan(0.5);
    expect(noisy.explain.worst.signals.cpuOverRequest).toBeCloseTo(1.7 / 4, 2);
    expect(noisy.explain.worst.bucket).toBe('high');
    const pod = podsOf('noisy')[0]!;
    expect(feature.scorer.forPod(NS, pod.metadata.name as string)).toMatchObject({ worst: 100 });
    // Two nodes: one high slot.
    expect(r.highSlots).toBe(1);
  });

  it('explains every workload on GET /api/v1/neighbours, narrowed by ?namespace=', async () => {
    const { status, body } = await api(ADMIN, 'GET', `/neighbours?namespace=${NS}`);
    expect(status).toBe(200);
    expect(body.items.map((w: Obj) => w.workload.name)).toEqual(expect.arrayContaining(['noisy', 'victim', 'calm', 'hidden']));
    const noisy = body.items[0];
    expect(noisy.workload).toEqual({ namespace: NS, kind: 'Deployment', name: 'noisy' });
    expect(Object.keys(noisy.explain)).toEqual(['now', 'usual', 'worst']);
    expect(Object.keys(noisy.explain.worst)).toEqual(['score', 'bucket', 'raw', 'rank', 'gate', 'capped', 'signals']);
    expect(body.nodes).toBe(2);
    expect((await api(ADMIN, 'GET', '/neighbours?namespace=elsewhere')).body.items).toEqual([]);
  });

  it('refuses a caller without the permission: 403 with its code', async () => {
    const { status, body } = await api(NOBODY, 'GET', `/neighbours?namespace=${NS}`);
    expect(status).toBe(403);
    expect(body.code).toBe('NEMU_ERR_FORBIDDEN');
    expect(body.message).toContain('list neighbours.nemutator.io in namespace shop');
    expect((await fetch(`${c.apiUrl}/neighbours`)).status).toBe(401);
  });

  it('prints the table with nemutator neighbours -n NS', async () => {
    let out = '';
    let err = '';
    const code = await runCli(['neighbours', '-n', NS, '--server', c.apiUrl.replace(/\/api\/v1$/, ''), '--token', ADMIN], {
      out: (t) => (out += t + '\n'),
      err: (t) => (err += t + '\n'),
    });
    expect(code, err).toBe(0);
    const lines = out.trim().split('\n');
    expect(lines[0]).toMatch(/^NAMESPACE\s+WORKLOAD\s+PODS\s+NOW\s+USUAL\s+WORST\s+WHY \(worst\)$/);
    expect(lines[1]).toMatch(/^shop\s+Deployment\/noisy\s+1\s+\d+ \w+\s+\d+ \w+\s+100 high\s+.*co-residents throttled/);
    expect(err).toContain('at most 1 workload(s) may be high');
    const denied = await runCli(['neighbours', '--server', c.apiUrl.replace(/\/api\/v1$/, ''), '--token', NOBODY], { out: () => {}, err: (t) => (err = t) });
    expect(denied).not.toBe(0);
    expect(err).toContain('NEMU_ERR_FORBIDDEN');
  });
});

describe('neighbour labels', () => {
  it('appear on the noisy pod and its Deployment (worst: high), never on skipped objects', async () => {
    await clearLabels();
    // Nemutator's own namespace (here: shop) is left alone, like kube-system.
    expect(await writer({ now: Date.now() }, 1000, excludedNamespaces(NS)).pass()).toEqual({ written: 0, deferred: 0, skipped: 0, failed: 0 });
    const w = writer({ now: Date.now() }, 1000);
    const r = await w.pass();
    expect(r.failed).toBe(0);
    expect(r.skipped).toBe(3); // Deployment hidden and its two pods (skip-mutation: neighbours)
    const pod = podsOf('noisy')[0]!.metadata.name as string;
    expect(neighbourLabelsOf('deployments.apps', 'noisy')).toEqual({
      [NEIGHBOUR_LABELS.now]: 'high',
      [NEIGHBOUR_LABELS.usual]: 'high',
      [NEIGHBOUR_LABELS.worst]: 'high',
    });
    expect(neighbourLabelsOf('pods', pod)[NEIGHBOUR_LABELS.worst]).toBe('high');
    expect(neighbourLabelsOf('deployments.apps', 'calm')[NEIGHBOUR_LABELS.worst]).toBe('low');
    expect(neighbourLabelsOf('deployments.apps', 'hidden')).toEqual({});
    for (const p of podsOf('hidden')) expect(neighbourLabelsOf('pods', p.metadata.name as string)).toEqual({});
    // Only bucket changes are written: once the model sees the labels, a pass writes nothing.
    await until(
      'the model sees the labels',
      () => model.list('deployments').find((d) => d.metadata?.name === 'noisy')?.metadata?.labels?.[NEIGHBOUR_LABELS.worst] === 'high',
    );
    await until('the model sees every label', async () => (await w.pass()).written === 0);
  });

  it('are rate-limited: at most writesPerMinute API writes in any minute, the rest in later minutes', async () => {
    await clearLabels();
    const clock = { now: Date.now() };
    const w = writer(clock, 3);
    const before = kube.requests.length;
    const first = await w.pass();
    expect(first.written).toBe(3);
    expect(first.deferred).toBeGreaterThan(3); // 2 + 2 + 1 pods and 3 Deployments need labels
    // the most harmful first: the noisy Deployment and its pod are in the first minute
    expect(neighbourLabelsOf('deployments.apps', 'noisy')[NEIGHBOUR_LABELS.worst]).toBe('high');
    expect(neighbourLabelsOf('pods', podsOf('noisy')[0]!.metadata.name as string)[NEIGHBOUR_LABELS.worst]).toBe('high');
    clock.now += 30_000;
    expect((await w.pass()).written).toBe(0);
    expect(patchesSince(before)).toHaveLength(3);
    clock.now += 30_001;
    expect((await w.pass()).written).toBe(3);
    expect(patchesSince(before)).toHaveLength(6);
    // Minute after minute until everything is labelled: never more than 3 writes per minute.
    let written = 6;
    for (let minute = 0; minute < 5; minute++) {
      clock.now += 60_001;
      const r = await w.pass();
      expect(r.written).toBeLessThanOrEqual(3);
      written += r.written;
    }
    expect(patchesSince(before)).toHaveLength(written);
    expect(written).toBe(8);
  });

  it('are written by the leader only, in the background', async () => {
    await clearLabels();
    let leader = false;
    const background = neighboursFeature({
      config: { ...c.config, neighbourLabels: true, neighbourLabelInterval: 100 },
      registry: c.registry,
      log: silentLogger,
      isLeader: () => leader,
      model,
      cluster: clusterFromConfig(kube.kubeconfigPath)!,
      mutationLog,
      skipRules,
    });
    try {
      const before = kube.requests.length;
      // A follower computes scores but writes nothing (several intervals pass).
      await until('the follower scored the pods', () => background.scorer.result().workloads.length === 4, 10_000);
      expect(patchesSince(before)).toEqual([]);
      leader = true;
      await until('the leader labelled the noisy Deployment', () => neighbourLabelsOf('deployments.apps', 'noisy')[NEIGHBOUR_LABELS.worst] === 'high', 10_000);
      await until('the pass is counted', () => background.writer!.totals.written > 0);
    } finally {
      await background.stop();
    }
  });

  it('are in the mutation log and rolled back by it: previous labels restored, not written again', async () => {
    await clearLabels();
    await k(['label', 'deployment', 'noisy', '-n', NS, `${NEIGHBOUR_LABELS.worst}=low`, 'team=web']);
    await until(
      'the model sees the hand-set label',
      () => model.list('deployments').find((d) => d.metadata?.name === 'noisy')?.metadata?.labels?.team === 'web',
    );
    const pod = podsOf('noisy')[0]!;
    const podName = pod.metadata.name as string;
    const w = writer({ now: Date.now() }, 1000);
    await w.pass();
    expect(neighbourLabelsOf('deployments.apps', 'noisy')[NEIGHBOUR_LABELS.worst]).toBe('high');
    await mutationLog.flush();
    const entries = await mutationLog.list({ namespace: NS, kind: 'Deployment', name: 'noisy', limit: 1 });
    expect(entries[0]).toMatchObject({ verbs: ['neighbours'], operation: 'UPDATE', user: 'nemutator:neighbour-labels' });
    expect(entries[0]!.reversePatch).toEqual(expect.arrayContaining([{ op: 'replace', path: '/metadata/labels/nemutator.io~1neighbour-worst', value: 'low' }]));

    const rolled = await api(ADMIN, 'POST', `/mutations/${entries[0]!.id}/rollback`);
    expect(rolled.status, JSON.stringify(rolled.body)).toBe(200);
    expect(rolled.body).toMatchObject({ action: 'labels-restored', kind: 'Deployment', skipRule: { verbs: ['neighbours'] } });
    expect(labelsOf('deployments.apps', 'noisy')).toMatchObject({ team: 'web', [NEIGHBOUR_LABELS.worst]: 'low' });
    expect(labelsOf('deployments.apps', 'noisy')).not.toHaveProperty(NEIGHBOUR_LABELS.now);

    // A pod's labels come back in place: the same pod, not an eviction.
    const [podEntry] = await mutationLog.list({ namespace: NS, kind: 'Pod', name: podName, limit: 1 });
    const podRolled = await api(ADMIN, 'POST', `/mutations/${podEntry!.id}/rollback`);
    expect(podRolled.status, JSON.stringify(podRolled.body)).toBe(200);
    expect(kube.get('pods', NS, podName)?.metadata.uid).toBe(pod.metadata.uid);
    expect(neighbourLabelsOf('pods', podName)).toEqual({});

    // The rollback's skip rule keeps the writer away from both.
    await until(
      'the model sees the restored labels',
      () => model.list('deployments').find((d) => d.metadata?.name === 'noisy')?.metadata?.labels?.[NEIGHBOUR_LABELS.worst] === 'low',
    );
    const again = await w.pass();
    expect(again.skipped).toBeGreaterThanOrEqual(5);
    expect(labelsOf('deployments.apps', 'noisy')[NEIGHBOUR_LABELS.worst]).toBe('low');
    // A second rollback of the same entry is refused.
    expect((await api(ADMIN, 'POST', `/mutations/${entries[0]!.id}/rollback`)).body.code).toBe('NEMU_ERR_CONFLICT');
  });
});

describe('opting in to the Nemutator-aware scheduler', () => {
  const podIn = (
    ns: string,
    name: string,
    extra: { labels?: Record<string, string>; annotations?: Record<string, string>; schedulerName?: string } = {},
  ): Obj => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: ns, labels: extra.labels ?? {}, annotations: extra.annotations ?? {} },
    spec: { ...(extra.schedulerName ? { schedulerName: extra.schedulerName } : {}), containers: [{ name: 'app', image: 'nginx:1.27' }] },
  });
  let seq = 0;
  async function create(pod: Obj): Promise<string> {
    pod.metadata.name = `${pod.metadata.name}-${++seq}`;
    await k(['create', '-f', '-'], { stdin: pod });
    return ((kube.get('pods', pod.metadata.namespace, pod.metadata.name)?.['spec'] as Obj).schedulerName as string) ?? '';
  }
  beforeAll(async () => {
    // The namespace informer lists once at start-up: until then a namespace reads as not opted in.
    await until('the webhook knows namespace optin is opted in', async () => (await create(podIn('optin', 'probe'))) === 'nemutator-scheduler', 15_000, 200);
  });

  it('sets spec.schedulerName for pods of an opted-in namespace, and leaves other namespaces alone', async () => {
    expect(await create(podIn('optin', 'web'))).toBe('nemutator-scheduler');
    expect(await create(podIn('plain', 'web'))).toBe('default-scheduler');
  });

  it("sets it for an opted-in workload: a labelled pod, and a labelled Deployment's template and pods", async () => {
    expect(await create(podIn('plain', 'api', { labels: { 'nemutator.io/scheduler': 'enabled' } }))).toBe('nemutator-scheduler');
    await k(['apply', '-f', '-'], {
      stdin: {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'batch', namespace: 'plain', labels: { 'nemutator.io/scheduler': 'enabled' } },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: 'batch' } },
          template: { metadata: { labels: { app: 'batch' } }, spec: { containers: [{ name: 'app', image: 'nginx:1.27' }] } },
        },
      },
    });
    expect(((kube.get('deployments.apps', 'plain', 'batch')!['spec'] as Obj).template.spec.schedulerName as string) ?? '').toBe('nemutator-scheduler');
    const pod = await until('the batch pod', () => kube.list('pods', 'plain').find((p) => (p.metadata.labels as Record<string, string>)?.app === 'batch'));
    expect((pod['spec'] as Obj).schedulerName).toBe('nemutator-scheduler');
  });

  it('never overrides a pod that names another scheduler, and lets a pod opt out', async () => {
    expect(await create(podIn('optin', 'gpu', { schedulerName: 'volcano' }))).toBe('volcano');
    expect(await create(podIn('optin', 'out', { labels: { 'nemutator.io/scheduler': 'disabled' } }))).toBe('default-scheduler');
  });

  it('honours skip: nemutator.io/skip and the verb scheduler in skip-mutation', async () => {
    expect(await create(podIn('optin', 'skip-all', { annotations: { 'nemutator.io/skip': 'true' } }))).toBe('default-scheduler');
    expect(await create(podIn('optin', 'skip-verb', { annotations: { 'nemutator.io/skip-mutation': 'scheduler' } }))).toBe('default-scheduler');
    // other verbs skipped: the opt-in still applies
    expect(await create(podIn('optin', 'skip-env', { annotations: { 'nemutator.io/skip-mutation': 'env image' } }))).toBe('nemutator-scheduler');
  });
});

describe('the scheduler component (kubectl kustomize)', () => {
  type Rendered = ReturnType<typeof render>;
  let objects: Rendered;
  beforeAll(() => {
    expect(componentNames()).toContain('scheduler');
    objects = render(['scheduler']);
  });
  const find = (kind: string, name: string) => objects.find((o) => o.kind === kind && o.metadata.name === name) as Obj | undefined;

  it('builds a pinned kube-scheduler whose KubeSchedulerConfiguration names the extender', () => {
    const d = find('Deployment', 'nemutator-scheduler')!;
    const container = d.spec.template.spec.containers[0];
    expect(container.image).toMatch(/^registry\.k8s\.io\/kube-scheduler:v1\.\d+\.\d+$/);
    expect(d.spec.template.spec.serviceAccountName).toBe('nemutator-scheduler');
    expect(d.spec.template.spec.schedulerName).toBeUndefined();
    const config = parse(find('ConfigMap', 'nemutator-scheduler-config')!.data['config.yaml']) as Obj;
    expect(config.apiVersion).toBe('kubescheduler.config.k8s.io/v1');
    expect(config.kind).toBe('KubeSchedulerConfiguration');
    // the extender's score replaces the requests-based ones that would fight off-peak packing
    expect(config.profiles).toEqual([
      {
        schedulerName: 'nemutator-scheduler',
        plugins: { score: { disabled: [{ name: 'NodeResourcesFit' }, { name: 'NodeResourcesBalancedAllocation' }] } },
      },
    ]);
    expect(config.leaderElection).toMatchObject({
      leaderElect: true,
      resourceLock: 'leases',
      resourceName: 'nemutator-scheduler',
      resourceNamespace: 'nemutator',
    });
    expect(config.extenders).toHaveLength(1);
    const e = config.extenders[0];
    expect(e).toMatchObject({ filterVerb: 'filter', prioritizeVerb: 'prioritize', nodeCacheCapable: true, ignorable: true, enableHTTPS: true, weight: 5 });
    expect(Object.keys(e.tlsConfig).sort()).toEqual(['caFile', 'certFile', 'keyFile', 'serverName']);
    // the urlPrefix reaches the controller's Service on a port that targets the container's extender port
    const url = new URL(e.urlPrefix);
    expect(url.protocol).toBe('https:');
    expect(url.pathname).toBe('/scheduler/v1');
    expect(url.hostname).toBe('nemutator-controller.nemutator.svc');
    const svcPort = (find('Service', 'nemutator-controller')!.spec.ports as Obj[]).find((p) => p.port === Number(url.port));
    const controller = find('Deployment', 'nemutator-controller')!.spec.template.spec.containers.find((x: Obj) => x.name === 'controller');
    expect((controller.ports as Obj[]).find((p) => p.name === svcPort?.targetPort)?.containerPort).toBe(Number(url.port));
    expect((controller.env as Obj[]).find((v) => v.name === 'NEMUTATOR_OPT_IN_SCHEDULER_NAME')?.value).toBe(config.profiles[0].schedulerName);
    // every file the configuration names is mounted
    const mounts = (container.volumeMounts as Obj[]).map((m) => m.mountPath as string);
    for (const f of [e.tlsConfig.caFile, e.tlsConfig.certFile, e.tlsConfig.keyFile, '/etc/kubernetes/scheduler/config.yaml'])
      expect(
        mounts.some((m) => f.startsWith(`${m}/`)),
        f,
      ).toBe(true);
    // the client certificate is the Secret the controller's leader issues (schedulerClientSecretName)
    const clientMount = (container.volumeMounts as Obj[]).find((m) => e.tlsConfig.certFile.startsWith(`${m.mountPath}/`))!;
    const volume = (find('Deployment', 'nemutator-scheduler')!.spec.template.spec.volumes as Obj[]).find((v) => v.name === clientMount.name)!;
    expect(volume.secret.secretName).toBe(testControllerConfig({}).schedulerClientSecretName);
  });

  it('grants the second scheduler exactly the rights docs/scheduler-opt-in.md lists', async () => {
    const { readFileSync } = await import('node:fs');
    const doc = readFileSync(new URL('../../docs/scheduler-opt-in.md', import.meta.url), 'utf8');
    const rows = [...doc.matchAll(/^\| (ClusterRoleBinding|RoleBinding) `([^`]+)` \| (ClusterRole|Role) `([^`]+)` \| `?([^`|]+?)`? \|/gm)].map(
      (m) => `${m[1]} ${m[2]} -> ${m[3]} ${m[4]} @ ${m[5]}`,
    );
    const bindings = objects
      .filter((o) => (o.kind === 'ClusterRoleBinding' || o.kind === 'RoleBinding') && (o as Obj).subjects.some((s: Obj) => s.name === 'nemutator-scheduler'))
      .map((b) => `${b.kind} ${b.metadata.name} -> ${(b as Obj).roleRef.kind} ${(b as Obj).roleRef.name} @ ${b.metadata.namespace ?? 'cluster'}`);
    expect(bindings.sort()).toEqual(rows.sort());
    expect(bindings).toHaveLength(4);
    // the one role the component ships: the lease, by name
    const lease = find('Role', 'nemutator-scheduler-lease')!;
    expect(lease.rules).toEqual([
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], resourceNames: ['nemutator-scheduler'], verbs: ['get', 'update'] },
    ]);
    expect(doc).toContain('| `coordination.k8s.io` | `leases` | `nemutator-scheduler` | `get`, `update` |');
    // nothing of the controller's or agent's rights goes to the scheduler, and it ships no ClusterRole
    expect(objects.filter((o) => o.kind === 'ClusterRole' && o.metadata.name.includes('scheduler'))).toEqual([]);
  });
});
