// The agent's /metrics names every pod of its node, so in a cluster it is guarded like the
// kubelet's: bearer token → TokenReview → SubjectAccessReview for get nodes/metrics. Here the
// API server is the double (it signs service-account tokens and evaluates RBAC like
// kube-apiserver), and the agent talks to it as its own service account, with the RBAC
// objects shipped in manifests/agent/rbac.yaml.
import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';

import { type RunningAgent, startAgent } from '#agent/app.js';
import { agentSchema } from '#agent/config.js';
import { loadConfig } from '#common/config.js';
import { createLogger } from '#common/log.js';

import { type KubeDouble, type KubeObject, startKubeDouble } from '../harness/kube/index.ts';
import { until } from '../harness/wait.ts';

const NODE = 'node-1';
let kube: KubeDouble;
let agent: RunningAgent;
let kubeStopped = false;
const logs: string[] = [];
/** Every token sent to the agent: none may appear in its logs or answers. */
const tokensSent: string[] = [];
const answers: string[] = [];

const shipped = parseAllDocuments(readFileSync('manifests/agent/rbac.yaml', 'utf8')).map((d) => d.toJS() as KubeObject);

beforeAll(async () => {
  kube = await startKubeDouble({ nodes: [NODE], controllers: false });
  // The agent's ClusterRole and binding as shipped; the agent authenticates as its service account.
  for (const o of shipped.filter((o) => o.metadata?.name === 'nemutator-agent')) kube.put(o);
  const agentKubeconfig = await kube.kubeconfigFor(await kube.issueToken({ namespace: 'nemutator', serviceAccount: 'nemutator-agent' }), 'nemutator-agent');
  const { config } = loadConfig(agentSchema, {
    program: 'nemutator-agent',
    env: {},
    argv: [],
    // metricsAuth left at its default: with an API server, callers are reviewed.
    defaults: { nodeName: NODE, kubeconfig: agentKubeconfig, controllerUrl: 'ws://127.0.0.1:9/fleet', host: '127.0.0.1', metricsPort: 0, logLevel: 'trace' },
  });
  const log = createLogger({
    level: 'trace',
    destination: new Writable({
      write(c, _e, cb) {
        logs.push(String(c));
        cb();
      },
    }),
  });
  agent = await startAgent(config, { log, ca: '', token: () => 'fleet-token-not-used-here' });
});
afterAll(async () => {
  await agent?.stop();
  if (!kubeStopped) await kube?.stop();
});

async function scrape(token?: string, path = '/metrics'): Promise<{ status: number; body: string; headers: Headers }> {
  if (token !== undefined) tokensSent.push(token);
  const res = await fetch(agent.metricsUrl!.replace(/\/metrics$/, path), { headers: token === undefined ? {} : { authorization: `Bearer ${token}` } });
  const body = await res.text();
  answers.push(body);
  return { status: res.status, body, headers: res.headers };
}

const prometheus = () => kube.issueToken({ namespace: 'monitoring', serviceAccount: 'prometheus' });

/** The shipped reader role, bound to the scraper as an operator would (idempotent). */
function bindPrometheus(): void {
  kube.put(shipped.find((o) => o.kind === 'ClusterRole' && o.metadata?.name === 'nemutator-metrics-reader')!);
  kube.put({
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRoleBinding',
    metadata: { name: 'prometheus-nemutator-metrics' },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'nemutator-metrics-reader' },
    subjects: [{ kind: 'ServiceAccount', name: 'prometheus', namespace: 'monitoring' }],
  });
}

describe("the agent's /metrics in a cluster", () => {
  it('keeps /healthz open for the probes', async () => {
    const r = await scrape(undefined, '/healthz');
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toMatchObject({ status: 'ok' });
  });

  it('refuses an anonymous scrape and a token the API server does not know with 401', async () => {
    const anonymous = await scrape();
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(JSON.parse(anonymous.body)).toMatchObject({ code: 'NEMU_ERR_UNAUTHORIZED', message: expect.stringMatching(/nodes\/metrics/) });

    expect((await scrape('garbage-' + Math.random().toString(36).slice(2))).status).toBe(401);
    const wrongAudience = await kube.issueToken({ namespace: 'monitoring', serviceAccount: 'prometheus', audiences: ['vault'] });
    expect((await scrape(wrongAudience)).status).toBe(401);
  });

  it('refuses a service account without get nodes/metrics with 403 naming the permission, and serves it once bound', async () => {
    const denied = await scrape(await prometheus());
    expect(denied.status).toBe(403);
    expect(JSON.parse(denied.body)).toMatchObject({
      code: 'NEMU_ERR_FORBIDDEN',
      message: expect.stringMatching(/system:serviceaccount:monitoring:prometheus may not get nodes\/metrics \(node node-1\).*nemutator-metrics-reader/),
    });

    bindPrometheus();
    // A fresh token of the same service account (the refusal of the first is remembered for 10 s).
    const token = await prometheus();
    const ok = await scrape(token);
    expect(ok.status).toBe(200);
    expect(ok.body).toContain('nemutator_node_cpu_cores');

    // The allow is remembered: the next scrapes cost the API server nothing.
    const reviewsBefore = kube.requests.filter((r) => r.path.includes('reviews')).length;
    for (let i = 0; i < 3; i++) expect((await scrape(token)).status).toBe(200);
    expect(kube.requests.filter((r) => r.path.includes('reviews')).length).toBe(reviewsBefore);
  });

  it('asks the API server exactly what the kubelet asks, as the agent service account', async () => {
    bindPrometheus();
    const from = kube.requests.length;
    expect((await scrape(await prometheus())).status).toBe(200);
    const reviews = kube.requests.slice(from).filter((r) => r.method === 'POST' && r.path.includes('reviews'));
    expect(reviews.length).toBeGreaterThanOrEqual(2);
    expect(new Set(reviews.map((r) => r.path.split('?')[0]))).toEqual(
      new Set(['/apis/authentication.k8s.io/v1/tokenreviews', '/apis/authorization.k8s.io/v1/subjectaccessreviews']),
    );
    expect(new Set(reviews.map((r) => r.user))).toEqual(new Set(['system:serviceaccount:nemutator:nemutator-agent']));
    expect(reviews.every((r) => r.status === 201 || r.status === 200)).toBe(true);
  });

  it('answers 503 while the API server is away, and keeps serving a remembered allow', async () => {
    bindPrometheus();
    const remembered = await prometheus();
    expect((await scrape(remembered)).status).toBe(200);
    const fresh = await prometheus();
    await kube.stop();
    kubeStopped = true;
    const away = await scrape(fresh);
    expect(away.status).toBe(503);
    expect(JSON.parse(away.body)).toMatchObject({ message: expect.stringMatching(/TokenReview/) });
    expect((await scrape(remembered)).status).toBe(200);
    await until('the agent still answering /healthz', async () => (await scrape(undefined, '/healthz')).status === 200);
  });

  it('never writes a token into its logs or answers', async () => {
    // Its own refused and allowed scrapes (the API server may be gone by now: refusals then say 503).
    await scrape('garbage-' + Math.random().toString(36).slice(2));
    await scrape(await kube.issueToken({ namespace: 'monitoring', serviceAccount: 'stranger' }).catch(() => 'no-api-server-' + Math.random()));
    if (!kubeStopped) {
      bindPrometheus();
      await scrape(await prometheus());
    }
    expect(tokensSent.length).toBeGreaterThanOrEqual(2);
    const everything = logs.join('') + answers.join('\n');
    expect(logs.some((l) => l.includes('refused a /metrics scrape'))).toBe(true);
    for (const t of tokensSent) {
      expect(everything.includes(t), 'a token leaked').toBe(false);
      // JWTs are three parts; the signature alone would be enough to spot a partial leak.
      const signature = t.split('.')[2];
      if (signature) expect(everything.includes(signature), 'a token signature leaked').toBe(false);
    }
  });
});
