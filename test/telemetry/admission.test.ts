// Telemetry at admission and on a season flip, end to end: a real Prometheus with two days
// of generated history, the Kubernetes API server double calling the controller's webhook,
// kubectl creating workloads. Pods get the recommended requests; a flip from off-peak to
// peak resizes running pods in place through pods/resize (or evicts them when their
// resizePolicy forbids it, or leaves them when a PodDisruptionBudget says no), each resize
// is in the mutation log and rolls back; with Prometheus stopped pods are admitted with a
// warning, resources untouched, and the rest of the chain still runs.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { silentLogger } from '#common/log.js';
import { type RunningController, startController } from '#controller/app.js';
import { runCli } from '#controller/cli/main.js';
import { controllerFeatures } from '#controller/features.js';
import { SharedTokenAgentAuthenticator } from '#controller/fleet/auth.js';
import { formatCpu } from '#controller/mutators/quantity.js';
import { localAuthorizer } from '#controller/server/access.js';
import { StaticTokenAuthenticator } from '#controller/server/auth.js';
import { telemetryTestHooks } from '#controller/telemetry/feature.js';
import { formatMemory } from '#controller/telemetry/source.js';

import { apiFetch, caFileOf, testControllerConfig, webhookConfiguration } from '../harness/controller.ts';
import { type KubeDouble, startKubeDouble } from '../harness/kube/index.ts';
import { openMetrics } from '../harness/openmetrics.ts';
import { type PrometheusServer, startPrometheus } from '../harness/prometheus.ts';
import { until } from '../harness/wait.ts';
import { type FixturePod, generateHistory, seriesOf } from './fixture.ts';

const exec = promisify(execFile);
type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const TOKEN = 'admin-token';
const NS = 'shop';
const Mi = 2 ** 20;

let kube: KubeDouble;
let prom: PrometheusServer;
let c: RunningController;
let dir: string;
let clockNow = 0;
/** Wednesday 20:00 UTC (off-peak); peak is four hours earlier. */
let offPeakNow = 0;

/** The latest Wednesday 20:00 UTC at least 4 h ago: off-peak, with Tuesday and Wednesday peaks in a 2-day window. */
function lastWednesdayEvening(): number {
  let t = Math.floor((Date.now() - 4 * 3_600_000) / 3_600_000) * 3_600_000;
  while (!(new Date(t).getUTCDay() === 3 && new Date(t).getUTCHours() === 20)) t -= 3_600_000;
  return t;
}

async function kubectl(args: string[], stdin?: unknown): Promise<{ stdout: string; stderr: string }> {
  const child = exec('kubectl', ['--kubeconfig', kube.kubeconfigPath, ...args], { timeout: 20_000 });
  if (stdin !== undefined) child.child.stdin!.end(JSON.stringify(stdin));
  return child;
}
async function api<T = Obj>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await apiFetch(c, `${c.apiUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}` },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const json = (await res.json()) as T;
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}
const podsOf = (prefix: string) => kube.list('pods', NS).filter((p) => String(p.metadata.name).startsWith(prefix)) as Obj[];
const requestsOf = (p: Obj) => p.spec.containers[0].resources.requests as Record<string, string>;

function historyPods(): FixturePod[] {
  const ids = ['x2kqz', 'b7n4m', 'q9wlr', 'h5tcd'];
  const web = ids.map((id, i): FixturePod => ({
    namespace: NS,
    pod: `web-7d4b9c8f5-${id}`,
    container: 'app',
    workload: { kind: 'Deployment', name: 'web' },
    cpuLow: 0.1 + i * 0.01,
    cpuHigh: 0.8 + i * 0.05,
    memLow: 150 * Mi,
    memHigh: 200 * Mi,
  }));
  const report = ids.map((id): FixturePod => ({
    namespace: NS,
    pod: `report-${id}`,
    container: 'job',
    workload: { kind: 'Job', name: 'report' },
    owner: { kind: 'Job', name: 'report' },
    cpuLow: 0.05,
    cpuHigh: 0.6,
    memLow: 80 * Mi,
    memHigh: 90 * Mi,
  }));
  return [...web, ...report];
}

beforeAll(async () => {
  const end = lastWednesdayEvening() / 1000;
  offPeakNow = end * 1000;
  clockNow = offPeakNow;
  telemetryTestHooks.clock = { now: () => clockNow };
  const history = generateHistory(historyPods(), end - 2 * 86400 - 3600, end, 60);
  dir = mkdtempSync(join(tmpdir(), 'nemu-telemetry-adm-'));
  [prom, kube] = await Promise.all([startPrometheus({ backfill: openMetrics(seriesOf(history, end - 2 * 86400)) }), startKubeDouble()]);
  const config = testControllerConfig({
    stateDir: dir,
    kubeconfig: kube.kubeconfigPath,
    dictionary: 'embedded',
    prometheusUrl: prom.url,
    telemetryWindow: 2 * 86_400_000,
    confidenceHistory: 2 * 86_400_000,
    telemetryRefresh: 3_600_000,
    resizeOnSeasonFlip: 'on',
    resizeRate: 6000,
  });
  c = await startController(config, {
    log: silentLogger,
    mode: 'cluster',
    apiAuth: new StaticTokenAuthenticator(TOKEN),
    authorizer: localAuthorizer,
    agentAuth: new SharedTokenAgentAuthenticator('x'),
    ...controllerFeatures(),
  });
  await until(
    'the first telemetry refresh',
    async () => {
      const s = await api('GET', '/seasons');
      if (s.error) throw new Error(JSON.stringify(s.error));
      return s.lastRefresh?.ok;
    },
    15_000,
    100,
  );
  await kubectl(['apply', '-f', '-'], webhookConfiguration(c));
  await kubectl(['create', '-f', '-'], { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
}, 90_000);

afterAll(async () => {
  telemetryTestHooks.clock = undefined;
  await c?.stop();
  await Promise.all([kube?.stop(), prom?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

async function recommendationFor(name: string): Promise<{ peak: Obj; offPeak: Obj }> {
  const { items } = await api<{ items: Obj[] }>('GET', '/recommendations');
  return items.find((i) => i.workload.name === name) as { peak: Obj; offPeak: Obj };
}

/** The `web` Deployment with its two pods running — made here if an earlier test has not (each test runs alone). */
async function ensureWeb(): Promise<Obj[]> {
  await kubectl(['apply', '-f', '-'], {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'web', namespace: NS },
    spec: {
      replicas: 2,
      selector: { matchLabels: { app: 'web' } },
      template: {
        metadata: { labels: { app: 'web' } },
        spec: {
          containers: [
            {
              name: 'app',
              image: 'nginx:1.27',
              resources: { requests: { cpu: '2', memory: '1Gi' }, limits: { cpu: '4', memory: '2Gi' } },
              resizePolicy: [
                { resourceName: 'cpu', restartPolicy: 'NotRequired' },
                { resourceName: 'memory', restartPolicy: 'NotRequired' },
              ],
            },
          ],
        },
      },
    },
  });
  return until(
    'two running web pods',
    () => {
      const p = podsOf('web-').filter((x) => x.metadata.labels?.app === 'web' && x.status?.phase === 'Running');
      return p.length === 2 ? p : undefined;
    },
    15_000,
    100,
  );
}

describe('telemetry-driven resources through the API server double', () => {
  it('pods of a Deployment get the off-peak recommendation at admission (it is Wednesday 20:00 UTC)', async () => {
    expect((await api('GET', '/seasons')).season).toBe('off-peak');
    const pods = await ensureWeb();
    const rec = await recommendationFor('web');
    const want = { cpu: formatCpu(rec.offPeak.requests.cpu), memory: formatMemory(rec.offPeak.requests.memory) };
    expect(rec.offPeak.requests.cpu).toBeLessThan(0.5); // off-peak p90 of ~0.1 cores × 1.1, not the 2 cores asked for
    for (const p of pods) expect(requestsOf(p)).toEqual(want);
    expect((kube.get('deployments.apps', NS, 'web') as Obj).spec.template.spec.containers[0].resources.requests).toEqual(want);
  });

  it('GET /api/v1/model links pods to ReplicaSets, Deployments and nodes; /model/export downloads it; /whatif and `nemutator whatif` compare current and recommended requests', async () => {
    await ensureWeb();
    await kube.settle();
    const model = await api('GET', '/model');
    const web = model.workloads.find((w: Obj) => w.kind === 'Deployment' && w.name === 'web');
    expect(web.pods).toHaveLength(2);
    expect(web.replicaSets).toHaveLength(1);
    const pod = model.pods.find((p: Obj) => p.name === web.pods[0]);
    expect(pod.owners).toEqual([
      { kind: 'ReplicaSet', name: web.replicaSets[0] },
      { kind: 'Deployment', name: 'web' },
    ]);
    expect(pod.node).toBe('node-1');
    expect(model.nodes.find((n: Obj) => n.name === 'node-1').pods).toBeGreaterThanOrEqual(2);
    // A workload's and a node's requests are the sums of their pods' containers.
    const requested = (pods: Obj[], r: 'cpu' | 'memory'): number =>
      pods.flatMap((p) => p.containers).reduce((a: number, c: Obj) => a + (c.requests[r] ?? 0), 0);
    const webPods = model.pods.filter((p: Obj) => web.pods.includes(p.name));
    expect(web.requests.cpu).toBeGreaterThan(0);
    expect(web.requests.cpu).toBeCloseTo(requested(webPods, 'cpu'), 9);
    expect(web.requests.memory).toBe(requested(webPods, 'memory'));
    const node1 = model.nodes.find((n: Obj) => n.name === 'node-1');
    expect(node1.requests.memory).toBe(
      requested(
        model.pods.filter((p: Obj) => p.node === 'node-1'),
        'memory',
      ),
    );
    expect(model.counts).toMatchObject({ deployments: 1, replicasets: 1, nodes: 1 });
    const exp = await apiFetch(c, `${c.apiUrl}/model/export`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(exp.headers.get('content-disposition')).toMatch(/attachment; filename="nemutator-model.json"/);
    expect(JSON.parse(await exp.text()).pods.length).toBe(model.pods.length);

    const whatif = await api('GET', '/whatif');
    const row = whatif.rows.find((r: Obj) => r.workload.name === 'web');
    const rec = await recommendationFor('web');
    expect(row.offPeak.cpu).toBeCloseTo(rec.offPeak.requests.cpu, 9);
    expect(row.current.cpu).toBeCloseTo(Number(formatCpu(rec.offPeak.requests.cpu).replace('m', '')) / 1000, 9);
    const out: string[] = [];
    const code = await runCli(['--server', c.apiUrl.replace(/\/api\/v1$/, ''), '--ca-file', caFileOf(c), '--token', TOKEN, 'whatif'], {
      out: (t) => out.push(t),
      err: (t) => out.push(t),
    });
    expect(code).toBe(0);
    expect(out.join('\n')).toMatch(/shop\/Deployment\/web\s+app\s+4\s/);
  });

  it('a flip to peak resizes running pods in place through pods/resize, evicts the one whose resizePolicy needs a restart it cannot have, leaves the one a PDB protects, and a resize rolls back', async () => {
    await ensureWeb();
    for (const [name, guarded] of [
      ['report-a1', false],
      ['report-b2', true],
    ] as const) {
      await kubectl(['create', '-f', '-'], {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          name,
          namespace: NS,
          labels: { app: guarded ? 'report-guarded' : 'report' },
          ownerReferences: [{ apiVersion: 'batch/v1', kind: 'Job', name: 'report', uid: '00000000-0000-0000-0000-00000000000a', controller: true }],
        },
        spec: {
          restartPolicy: 'Never',
          containers: [
            {
              name: 'job',
              image: 'busybox:1.36',
              resources: { requests: { cpu: '1', memory: '512Mi' } },
              resizePolicy: [{ resourceName: 'cpu', restartPolicy: 'RestartContainer' }],
            },
          ],
        },
      });
    }
    await kubectl(['create', '-f', '-'], {
      apiVersion: 'policy/v1',
      kind: 'PodDisruptionBudget',
      metadata: { name: 'report-guard', namespace: NS },
      spec: { minAvailable: 1, selector: { matchLabels: { app: 'report-guarded' } } },
    });
    await until('report pods running', () => podsOf('report-').filter((p) => p.status?.phase === 'Running').length === 2, 15_000, 100);
    await kube.settle();
    const guardedBefore = requestsOf(kube.get('pods', NS, 'report-b2') as Obj);

    clockNow = offPeakNow - 4 * 3_600_000; // Wednesday 16:00 UTC: peak
    await api('POST', '/telemetry/refresh');
    const seasons = await api('GET', '/seasons');
    expect(seasons.season).toBe('peak');
    const metrics = await new Promise<string>((resolve, reject) => {
      https
        .get(c.webhookUrl.replace(/\/mutate$/, '/metrics'), { ca: c.tls.caPem, headers: { authorization: `Bearer ${TOKEN}` } }, (res) => {
          let body = '';
          res.on('data', (d) => (body += d)).on('end', () => resolve(body));
        })
        .on('error', reject);
    });
    expect(metrics).toMatch(/^nemutator_telemetry_up 1$/m);
    expect(metrics).toMatch(/^nemutator_season\{season="peak"\} 1$/m);
    // generated peak: weekdays 09:00–17:00 UTC; Tuesday is fully inside the 2-day window
    expect(seasons.peakHours).toEqual(expect.arrayContaining(Array.from({ length: 8 }, (_, i) => 2 * 24 + 9 + i)));
    expect(seasons.offPeakHours).toEqual(expect.arrayContaining([2 * 24 + 3, 2 * 24 + 20]));
    expect(seasons.schedule).toContainEqual({ season: 'peak', from: 'Tue 09:00', to: 'Tue 17:00', hours: 8 });
    const webProfile = await api('GET', `/seasons?namespace=${NS}&kind=Deployment&name=web`);
    expect(webProfile.pods).toBe(4);
    expect(webProfile.peakHours).toEqual(expect.arrayContaining(Array.from({ length: 8 }, (_, i) => 2 * 24 + 9 + i)));
    expect(webProfile.offPeakHours).toContain(2 * 24 + 3);
    const { items } = await until(
      'the resize pass',
      async () => {
        const r = await api<{ items: Obj[] }>('GET', '/resizes');
        return r.items.length >= 4 ? r : undefined;
      },
      15_000,
      100,
    );
    const by = Object.fromEntries(items.map((i) => [i.pod, i]));
    const rec = await recommendationFor('web');
    const peak = { cpu: formatCpu(rec.peak.requests.cpu), memory: formatMemory(rec.peak.requests.memory) };
    for (const p of podsOf('web-')) {
      expect(by[p.metadata.name].action).toBe('resized');
      expect(requestsOf(p)).toEqual(peak);
      // limits stay while the new requests fit under them
      expect(p.spec.containers[0].resources.limits).toEqual({ cpu: '4', memory: '2Gi' });
    }
    expect(by['report-a1']).toMatchObject({ action: 'evicted' });
    expect(by['report-a1'].reason).toMatch(/RestartContainer/);
    expect(kube.get('pods', NS, 'report-a1')).toBeUndefined();
    expect(by['report-b2']).toMatchObject({ action: 'left' });
    expect(by['report-b2'].reason).toMatch(/PodDisruptionBudget/);
    expect(requestsOf(kube.get('pods', NS, 'report-b2') as Obj)).toEqual(guardedBefore);

    const resized = items.find((i) => i.action === 'resized')!;
    const { items: logged } = await api<{ items: Obj[] }>('GET', `/mutations?kind=Pod&name=${resized.pod}`);
    expect(logged.find((e) => e.id === resized.mutationId)).toMatchObject({ verbs: ['resources'], operation: 'UPDATE', user: 'nemutator:season-resize' });
    const before = resized.changes[0].from as Record<string, string>;
    await api('POST', `/resizes/${resized.mutationId}/rollback`);
    const back = kube.get('pods', NS, resized.pod) as Obj;
    expect(requestsOf(back)).toEqual({ cpu: before['requests.cpu'], memory: before['requests.memory'] });
    expect((await api('GET', `/mutations/${resized.mutationId}`)).rolledBack).toBeDefined();
  });

  it('a dry-run pass plans the flip back to off-peak and changes nothing', async () => {
    await ensureWeb();
    // The web pods at peak requests (a no-op for those the flip test already moved there).
    await api('POST', '/resizes/flip?season=peak');
    const before = podsOf('web-').map((p) => requestsOf(p));
    const r = await api('POST', '/resizes/flip?season=off-peak&dryRun=true');
    expect(r.mode).toBe('dry-run');
    expect(r.items.length).toBeGreaterThan(0);
    for (const i of r.items) expect(i.action).toBe('planned');
    expect(r.items.find((i: Obj) => i.pod.startsWith('web-')).changes[0].to['requests.cpu']).toBe(
      formatCpu((await recommendationFor('web')).offPeak.requests.cpu),
    );
    expect(podsOf('web-').map((p) => requestsOf(p))).toEqual(before);
  });

  it('with Prometheus stopped a pod is admitted with a warning and its resources untouched, while the rest of the chain still runs', async () => {
    await api('PUT', '/dictionary/nemu_label_team', { value: 'team' });
    await prom.stop();
    await apiFetch(c, `${c.apiUrl}/telemetry/refresh`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } });
    const seasons = await api('GET', '/seasons');
    expect(seasons.error.code).toBe('NEMU_ERR_PROMETHEUS');
    const { stderr } = await kubectl(['create', '-f', '-'], {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: 'web-extra',
        namespace: NS,
        labels: { nemu_label_team: 'shop' },
        ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-7d4b9c8f5', uid: '00000000-0000-0000-0000-00000000000b', controller: false }],
      },
      spec: { containers: [{ name: 'app', image: 'nginx:1.27', resources: { requests: { cpu: '2', memory: '1Gi' } } }] },
    });
    expect(stderr).toMatch(/Warning: .*NEMU_ERR_PROMETHEUS.*unreachable/);
    const pod = kube.get('pods', NS, 'web-extra') as Obj;
    expect(requestsOf(pod)).toEqual({ cpu: '2', memory: '1Gi' });
    expect(pod.metadata.labels.team).toBe('shop');
  });
});
