// Every REST route, in a cluster, against the API server double (which evaluates RBAC for
// SubjectAccessReview like kube-apiserver) with the shipped manifests applied by
// `kubectl apply -k manifests/`:
// - no token, a garbage token, an expired token and a token for another audience get 401;
// - a service account without RBAC gets 403 naming the permission, on every route;
// - a service account bound to the shipped role the route's permission belongs to gets its 2xx;
// - a role bound in namespace team-a reaches team-a's objects and nothing of team-b's.
// The table must name every route the controller registers, so a new route cannot go untested.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commandRouter } from '../../agent/src/app.ts';
import type { FleetClient } from '../../agent/src/fleet/client.ts';
import { silentLogger } from '../../common/src/log.ts';
import { startController, type RunningController } from '../../controller/src/app.ts';
import { createAdmission, registerRoutes } from '../../controller/src/features.ts';
import { SharedTokenAgentAuthenticator } from '../../controller/src/fleet/auth.ts';
import { TokenReviewer } from '../../controller/src/kube/tokenreview.ts';
import { SubjectAccessReviewAuthorizer } from '../../controller/src/server/access.ts';
import { TokenReviewAuthenticator } from '../../controller/src/server/auth.ts';
import { loadKubeConfig } from '../../common/src/kube.ts';
import { apiFetch, testControllerConfig, webhookConfiguration } from '../harness/controller.ts';
import { standInAgent } from '../harness/fleet.ts';
import { startKubeDouble, type KubeDouble } from '../harness/kube/index.ts';
import { openMetrics } from '../harness/openmetrics.ts';
import { startPrometheus, type PrometheusServer } from '../harness/prometheus.ts';
import { until } from '../harness/wait.ts';
import { generateHistory, seriesOf } from '../telemetry/fixture.ts';

const exec = promisify(execFile);
type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

let kube: KubeDouble;
let prom: PrometheusServer;
let c: RunningController;
let dir: string;
let agent: FleetClient;
const ids: Record<string, string> = {};

async function kubectl(args: string[], stdin?: unknown): Promise<string> {
  const child = exec('kubectl', ['--kubeconfig', kube.kubeconfigPath, ...args], { timeout: 30_000 });
  if (stdin !== undefined) child.child.stdin!.end(JSON.stringify(stdin));
  return (await child).stdout;
}

async function call(token: string | undefined, method: string, path: string, body?: unknown): Promise<{ status: number; body: Obj }> {
  const res = await apiFetch(c, c.apiUrl + path, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Obj) : {} };
}

const admin = (method: string, path: string, body?: unknown) => call(kube.adminToken, method, path, body);

/** A service account bound to a shipped ClusterRole, cluster-wide or (namespace given) with a RoleBinding there. */
const bindings = new Map<string, Promise<string>>();
function boundTo(role: string, namespace?: string): Promise<string> {
  const key = `${role}/${namespace ?? ''}`;
  if (!bindings.has(key)) bindings.set(key, bind(role, namespace));
  return bindings.get(key)!;
}
async function bind(role: string, namespace?: string): Promise<string> {
  const sa = `as-${role.replace(/^nemutator-/, '')}${namespace ? `-in-${namespace}` : ''}`;
  const binding = namespace
    ? ['create', 'rolebinding', sa, '-n', namespace, `--clusterrole=${role}`, `--serviceaccount=rbac-test:${sa}`]
    : ['create', 'clusterrolebinding', sa, `--clusterrole=${role}`, `--serviceaccount=rbac-test:${sa}`];
  await kubectl(binding);
  return kube.issueToken({ namespace: 'rbac-test', serviceAccount: sa });
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

/** Makes a mutation of a Deployment in `namespace` and returns its id. */
async function mutationIn(namespace: string, name: string): Promise<string> {
  await kubectl(['create', '-f', '-'], deployment(namespace, name));
  const list = await until(`the mutation of ${namespace}/${name}`, async () => {
    const r = await admin('GET', `/mutations?namespace=${namespace}&name=${name}&kind=Deployment`);
    return r.body.items?.length ? r.body.items : undefined;
  });
  return list[0].id as string;
}

async function profileIn(namespace: string, pod: string, token = kube.adminToken): Promise<{ status: number; body: Obj }> {
  return call(token, 'POST', '/profiles', { namespace, pod, seconds: 1 });
}

interface Case {
  method: string;
  /** As registered (the pattern), to check the table covers every route. */
  pattern: string;
  /** The concrete path, resolved when the case runs (ids are known only then). */
  path: () => string;
  body?: () => unknown;
  /** The shipped ClusterRole that grants it. */
  role: string;
  /** Namespaced objects: the role is bound with a RoleBinding in team-a, and team-b's twin is refused. */
  teamB?: { path: () => string; body?: () => unknown };
  /** What the bound caller gets. */
  status: number;
  /** Runs before the allowed call (objects it consumes). */
  setup?: () => Promise<void>;
}

const cases: Case[] = [
  { method: 'GET', pattern: '/api/v1/status', path: () => '/status', role: 'nemutator-viewer', status: 200 },
  { method: 'GET', pattern: '/api/v1/audit', path: () => '/audit', role: 'nemutator-viewer', status: 200 },
  { method: 'GET', pattern: '/api/v1/nodes', path: () => '/nodes', role: 'nemutator-viewer', status: 200 },
  { method: 'GET', pattern: '/api/v1/nodes/{name}', path: () => '/nodes/node-1', role: 'nemutator-viewer', status: 200 },
  { method: 'GET', pattern: '/api/v1/dictionary', path: () => '/dictionary', role: 'nemutator-viewer', status: 200 },
  { method: 'GET', pattern: '/api/v1/dictionary/{key}', path: () => '/dictionary/nemu_label_team', role: 'nemutator-viewer', status: 200 },
  { method: 'PUT', pattern: '/api/v1/dictionary/{key}', path: () => '/dictionary/nemu_label_value_probe', body: () => ({ value: 'probe' }), role: 'nemutator-dictionary-editor', status: 200 },
  {
    method: 'DELETE',
    pattern: '/api/v1/dictionary/{key}',
    path: () => '/dictionary/nemu_label_value_gone',
    role: 'nemutator-dictionary-editor',
    status: 204,
    setup: async () => void expect((await admin('PUT', '/dictionary/nemu_label_value_gone', { value: 'x' })).status).toBe(200),
  },
  { method: 'GET', pattern: '/api/v1/seasons', path: () => '/seasons', role: 'nemutator-viewer', status: 200 },
  { method: 'GET', pattern: '/api/v1/telemetry', path: () => '/telemetry', role: 'nemutator-viewer', status: 200 },
  { method: 'POST', pattern: '/api/v1/telemetry/refresh', path: () => '/telemetry/refresh', role: 'nemutator-operator', status: 200 },
  { method: 'GET', pattern: '/api/v1/recommendations', path: () => '/recommendations', role: 'nemutator-viewer', status: 200 },
  { method: 'GET', pattern: '/api/v1/whatif', path: () => '/whatif', role: 'nemutator-viewer', status: 200 },
  { method: 'GET', pattern: '/api/v1/model', path: () => '/model', role: 'nemutator-viewer', status: 200 },
  { method: 'GET', pattern: '/api/v1/model/export', path: () => '/model/export', role: 'nemutator-viewer', status: 200 },
  { method: 'GET', pattern: '/api/v1/resizes', path: () => '/resizes', role: 'nemutator-viewer', status: 200 },
  { method: 'POST', pattern: '/api/v1/resizes/flip', path: () => '/resizes/flip?season=peak&dryRun=true', role: 'nemutator-operator', status: 200 },
  // No season resize exists in this fixture: the operator gets past authorization to the feature's own 404.
  { method: 'POST', pattern: '/api/v1/resizes/{id}/rollback', path: () => '/resizes/01J0000000000000000000000/rollback', role: 'nemutator-operator', status: 404 },
  { method: 'POST', pattern: '/api/v1/secrets/rotate', path: () => '/secrets/rotate', body: () => ({ path: 'secret/app/db' }), role: 'nemutator-secrets-rotator', status: 200 },
  {
    method: 'GET',
    pattern: '/api/v1/secrets/status',
    path: () => '/secrets/status?namespace=team-a',
    role: 'nemutator-secrets-rotator',
    status: 200,
    teamB: { path: () => '/secrets/status?namespace=team-b' },
  },
  { method: 'GET', pattern: '/api/v1/mutations', path: () => '/mutations?namespace=team-a', role: 'nemutator-viewer', status: 200, teamB: { path: () => '/mutations?namespace=team-b' } },
  { method: 'GET', pattern: '/api/v1/mutations/{id}', path: () => `/mutations/${ids.mutationA}`, role: 'nemutator-viewer', status: 200, teamB: { path: () => `/mutations/${ids.mutationB}` } },
  {
    method: 'POST',
    pattern: '/api/v1/mutations/{id}/rollback',
    path: () => `/mutations/${ids.mutationA}/rollback`,
    role: 'nemutator-operator',
    status: 200,
    teamB: { path: () => `/mutations/${ids.mutationB}/rollback` },
  },
  // After the rollback above, which wrote this skip rule.
  { method: 'GET', pattern: '/api/v1/skip-rules', path: () => '/skip-rules?namespace=team-a', role: 'nemutator-viewer', status: 200, teamB: { path: () => '/skip-rules?namespace=team-b' } },
  {
    method: 'DELETE',
    pattern: '/api/v1/skip-rules/{namespace}/{kind}/{name}',
    path: () => '/skip-rules/team-a/Deployment/web-a',
    role: 'nemutator-dictionary-editor',
    status: 204,
    teamB: { path: () => '/skip-rules/team-b/Deployment/web-b' },
  },
  {
    method: 'POST',
    pattern: '/api/v1/profiles',
    path: () => '/profiles',
    body: () => ({ namespace: 'team-a', pod: 'api-a', seconds: 1 }),
    role: 'nemutator-profiler',
    status: 201,
    teamB: { path: () => '/profiles', body: () => ({ namespace: 'team-b', pod: 'api-b', seconds: 1 }) },
  },
  { method: 'GET', pattern: '/api/v1/profiles', path: () => '/profiles?namespace=team-a', role: 'nemutator-profiler', status: 200, teamB: { path: () => '/profiles?namespace=team-b' } },
  { method: 'GET', pattern: '/api/v1/profiles/{id}', path: () => `/profiles/${ids.profileA}`, role: 'nemutator-profiler', status: 200, teamB: { path: () => `/profiles/${ids.profileB}` } },
];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'nemu-route-perms-'));
  const end = Math.floor(Date.now() / 1000);
  const history = generateHistory(
    [{ namespace: 'team-a', pod: 'web-a-5d9c7b-abcde', container: 'app', workload: { kind: 'Deployment', name: 'web-a' }, cpuLow: 0.1, cpuHigh: 0.5, memLow: 100 * 2 ** 20, memHigh: 150 * 2 ** 20 }],
    end - 3 * 3600,
    end,
    60,
  );
  [prom, kube] = await Promise.all([startPrometheus({ backfill: openMetrics(seriesOf(history, end - 3 * 3600)) }), startKubeDouble({ nodes: ['node-1'] })]);
  // The shipped manifests, as an operator installs them (roles included).
  await kubectl(['apply', '-k', 'manifests/']);
  const kc = loadKubeConfig(kube.kubeconfigPath)!;
  const config = testControllerConfig({ stateDir: dir, kubeconfig: kube.kubeconfigPath, dictionary: 'embedded', prometheusUrl: prom.url, telemetryWindow: 3 * 3_600_000, telemetryRefresh: 3_600_000, apiRateLimit: 0 });
  c = await startController(config, {
    log: silentLogger,
    mode: 'cluster',
    apiAuth: new TokenReviewAuthenticator(new TokenReviewer(kc)),
    authorizer: new SubjectAccessReviewAuthorizer(kc),
    agentAuth: new SharedTokenAgentAuthenticator('agent-token'),
    admission: createAdmission,
    routes: registerRoutes,
  });
  // A node with an agent that answers profiles and secret commands.
  agent = standInAgent(c, 'node-1', 'agent-token', {
    onCommand: commandRouter({
      profile: async () => ({ profile: { frames: [{ function: 'main.work', kind: 'go' }], samples: [{ frames: [0], count: 3 }], processes: [], hz: 49 } }),
      rotate: async () => ({ rotate: { pathsChecked: 1, newVersions: 0, watchersNotified: 0 } }),
      secretStatus: async () => ({
        secretStatus: {
          holders: ['team-a', 'team-b'].map((ns) => ({ podUid: `u-${ns}`, namespace: ns, pod: `api-${ns.slice(-1)}`, container: 'app', path: 'secret/app/db', version: 1, ackedVersion: 1 })),
        },
      }),
    }),
  });
  await new Promise<void>((resolve, reject) => {
    agent.once('connected', () => resolve());
    agent.once('refused', reject);
    agent.start();
  });
  // Objects in two namespaces: mutations (and, once rolled back, skip rules) and profiles.
  await kubectl(['apply', '-f', '-'], webhookConfiguration(c));
  for (const [key, value] of Object.entries({ nemu_label_team: 'example.com/team', nemu_label_value_pay: 'payments' })) expect((await admin('PUT', `/dictionary/${key}`, { value })).status).toBe(200);
  for (const ns of ['team-a', 'team-b', 'rbac-test']) await kubectl(['create', 'namespace', ns]);
  ids.mutationA = await mutationIn('team-a', 'web-a');
  ids.mutationB = await mutationIn('team-b', 'web-b');
  expect((await admin('POST', `/mutations/${ids.mutationB}/rollback`)).status).toBe(200);
  for (const ns of ['team-a', 'team-b']) {
    const pod = `api-${ns.slice(-1)}`;
    kube.put({ apiVersion: 'v1', kind: 'Pod', metadata: { name: pod, namespace: ns, uid: `u-${ns}` }, spec: { nodeName: 'node-1', containers: [{ name: 'app', image: 'app' }] } });
  }
  const b = await profileIn('team-b', 'api-b');
  expect(b.status).toBe(201);
  ids.profileB = b.body.id;
  const a = await profileIn('team-a', 'api-a');
  expect(a.status).toBe(201);
  ids.profileA = a.body.id;
  await until('the first telemetry refresh', async () => (await admin('GET', '/telemetry')).status === 200, 30_000, 100);
}, 120_000);

afterAll(async () => {
  await agent?.stop();
  await c?.stop();
  await Promise.all([kube?.stop(), prom?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

describe('every REST route in a cluster', () => {
  it('is in this table, with the permission docs/security.md gives it', () => {
    const registered = c.routes.filter((r) => r.access !== 'public').map((r) => `${r.method} ${r.pattern}`);
    expect(new Set(cases.map((k) => `${k.method} ${k.pattern}`))).toEqual(new Set(registered));
    expect(c.routes.filter((r) => r.access === 'public').map((r) => r.pattern).sort()).toEqual(['/healthz', '/readyz']);
    // docs/security.md's route table says the same verb and resource for each route.
    const documented = new Map<string, string>();
    for (const line of readFileSync('docs/security.md', 'utf8').split('\n')) {
      const m = /^\| (GET|PUT|POST|DELETE) \| (.+?) \| (get|list|create|update|delete) \| `([a-z/]+)` \|/.exec(line);
      if (!m) continue;
      for (const route of m[2]!.matchAll(/`([^`]+)`/g)) documented.set(`${m[1]} ${route[1]}`, `${m[3]} ${m[4]}`);
    }
    const declared = new Map(
      c.routes.flatMap((r) => (r.access === 'public' ? [] : [[`${r.method} ${r.pattern}`, `${r.access.verb} ${r.access.resource}${r.access.subresource ? `/${r.access.subresource}` : ''}`] as const])),
    );
    expect(Object.fromEntries(documented)).toEqual(Object.fromEntries(declared));
  });

  it('answers 401 without a token, with a garbage, expired or wrong-audience token, on every route', async () => {
    const expired = await kube.issueToken({ namespace: 'rbac-test', serviceAccount: 'late', expirationSeconds: -60 });
    const forVault = await kube.issueToken({ namespace: 'rbac-test', serviceAccount: 'vaulty', audiences: ['vault'] });
    for (const k of cases) {
      for (const token of [undefined, 'garbage', expired, forVault]) {
        const r = await call(token, k.method, k.path(), k.body?.());
        expect(r.status, `${k.method} ${k.pattern}`).toBe(401);
        expect(r.body.code).toBe('NEMU_ERR_UNAUTHORIZED');
      }
    }
  });

  it('answers 403 naming the permission to a service account without RBAC, on every route, and changes nothing', async () => {
    const nosy = await kube.issueToken({ namespace: 'rbac-test', serviceAccount: 'nosy' });
    const before = (await admin('GET', '/dictionary')).body.items;
    for (const k of cases) {
      const r = await call(nosy, k.method, k.path(), k.body?.());
      expect(r.status, `${k.method} ${k.pattern}`).toBe(403);
      expect(r.body.code).toBe('NEMU_ERR_FORBIDDEN');
      expect(r.body.message).toMatch(/^system:serviceaccount:rbac-test:nosy may not (get|list|create|update|delete) [a-z]+(\/[a-z]+)?\.nemutator\.io (in namespace [a-z-]+|cluster-wide)/);
      expect(r.body.message).not.toMatch(/\n\s+at /);
    }
    expect((await admin('GET', '/dictionary')).body.items).toEqual(before);
    // The refusals of state-changing calls are in the audit log.
    const audit = (await admin('GET', '/audit?user=system:serviceaccount:rbac-test:nosy&limit=100')).body.items as Obj[];
    expect(audit.length).toBe(cases.filter((k) => k.method !== 'GET').length);
    expect(audit.every((e) => e.outcome === 'denied' && e.status === 403)).toBe(true);
  });

  it('names the permission and the namespace in a refusal: create mutations/rollback in namespace team-b', async () => {
    const token = await boundTo('nemutator-operator', 'team-a');
    const r = await call(token, 'POST', `/mutations/${ids.mutationB}/rollback`);
    expect(r.status).toBe(403);
    expect(r.body.message).toContain('may not create mutations/rollback.nemutator.io in namespace team-b');
  });

  it('keeps a role bound in namespace team-a inside team-a, and out of cluster-wide lists', async () => {
    for (const k of cases.filter((x) => x.teamB)) {
      const token = await boundTo(k.role, 'team-a');
      const r = await call(token, k.method, k.teamB!.path(), k.teamB!.body?.());
      expect(r.status, `${k.method} ${k.teamB!.path()}`).toBe(403);
      expect(r.body.message).toContain('in namespace team-b');
      if (k.method === 'GET' && k.path().includes('?namespace=')) {
        const everywhere = await call(token, k.method, k.path().replace(/[?&]namespace=team-a/, ''));
        expect(everywhere.status, `${k.method} ${k.pattern} without ?namespace=`).toBe(403);
        expect(everywhere.body.message).toContain('cluster-wide');
      }
    }
  });

  it('serves a caller bound to the shipped role (team-a RoleBinding for namespaced objects, ClusterRoleBinding otherwise)', async () => {
    const tokens = new Map<string, string>();
    for (const k of cases) {
      const key = `${k.role}${k.teamB ? ':team-a' : ''}`;
      if (!tokens.has(key)) tokens.set(key, await boundTo(k.role, k.teamB ? 'team-a' : undefined));
      await k.setup?.();
      const r = await call(tokens.get(key), k.method, k.path(), k.body?.());
      expect(r.status, `${k.method} ${k.pattern}: ${JSON.stringify(r.body).slice(0, 300)}`).toBe(k.status);
    }
    // What a namespaced caller saw of lists is its own namespace only.
    const viewer = tokens.get('nemutator-viewer:team-a')!;
    const mutations = (await call(viewer, 'GET', '/mutations?namespace=team-a')).body.items as Obj[];
    expect(mutations.map((m) => m.namespace)).toEqual(['team-a']);
    const status = (await call(tokens.get('nemutator-secrets-rotator:team-a'), 'GET', '/secrets/status?namespace=team-a')).body;
    expect(status.holders.map((h: Obj) => h.namespace)).toEqual(['team-a']);
  });
});
