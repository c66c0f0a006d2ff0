// The CLI in a cluster, as the people the shipped roles are for use it (issue 14):
// - the shipped manifests applied with `kubectl apply -k manifests/` against the API server
//   double (which evaluates RBAC for SubjectAccessReview like kube-apiserver), a service
//   account bound with a ClusterRoleBinding to each shipped role, and a matrix of `nemutator`
//   commands run with its token: each succeeds exactly when docs/security.md's route table
//   lists the role for the route the command calls, and is refused with NEMU_ERR_FORBIDDEN
//   otherwise (the expectation is read from the doc, so the test checks the code against it);
// - after a scripted session of writes, `nemutator audit` lists each with its user, action and
//   outcome, newest first; and neither the audit, the controller's logs, its /metrics page nor
//   the CLI's output holds a token used or the secret value written to the dictionary.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { AuditEntry } from '#controller/audit/log.js';
import { runCli } from '#controller/cli/main.js';

import { AGENT_TOKEN, type ClusterWorld, startClusterWorld, TINY_PROFILE } from '../harness/cluster.ts';
import { apiFetch, caFileOf } from '../harness/controller.ts';
import { capturingLogger } from '../harness/logs.ts';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const NS = 'cli-roles';
const USERS_NS = 'cli-users';
const SECRET = 'S3cretValue-xyz';
const ROLES = ['nemutator-viewer', 'nemutator-dictionary-editor', 'nemutator-operator', 'nemutator-profiler', 'nemutator-secrets-rotator'] as const;
/** For Prometheus, not the CLI: its one route, the webhook port's /metrics, has a test of its own below. */
const SCRAPER = 'nemutator-metrics-scraper';

let w: ClusterWorld;
let caFile: string;

const logs: string[] = [];
/** Every token a test used, to look for in what the controller keeps and shows. */
const tokensUsed = new Set<string>();

const capture = (name: string) => capturingLogger(name, logs);

const admin = (method: string, path: string, body?: unknown) => w.admin(method, path, body);

interface CliResult {
  code: number;
  out: string;
  err: string;
}

/** `nemutator <args>` with the given token, against the controller, trusting its CA only. */
async function cli(token: string, ...args: string[]): Promise<CliResult> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli([...args, '--server', w.c.apiUrl.replace(/\/api\/v1$/, ''), '--ca-file', caFile, '--token', token], {
    out: (s) => void out.push(s),
    err: (s) => void err.push(s),
  });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

/** A service account in USERS_NS bound to `role` with a ClusterRoleBinding (no binding when role is undefined); its token. */
async function userBoundTo(sa: string, role?: string): Promise<string> {
  if (role) await w.kubectl(['create', 'clusterrolebinding', sa, `--clusterrole=${role}`, `--serviceaccount=${USERS_NS}:${sa}`]);
  const token = await w.kube.issueToken({ namespace: USERS_NS, serviceAccount: sa });
  tokensUsed.add(token);
  return token;
}
const userName = (sa: string) => `system:serviceaccount:${USERS_NS}:${sa}`;

const mutationOf = (name: string) => w.mutationOf(NS, name);

/** A skip rule for Deployment NS/name: its mutation, rolled back by the admin. */
async function skipRuleFor(name: string): Promise<void> {
  const id = await mutationOf(name);
  expect((await admin('POST', `/mutations/${id}/rollback`)).status).toBe(200);
}

// docs/security.md's route table: "METHOD route" → the shipped roles that grant it.
function documentedRoles(): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of readFileSync('docs/security.md', 'utf8').split('\n')) {
    const m = /^\| (GET|PUT|POST|DELETE) \| (.+?) \| [^|]+ \| [^|]+ \| [^|]+ \| (.+?) \|$/.exec(line);
    if (!m) continue;
    const roles = [...m[3]!.matchAll(/`(nemutator-[a-z-]+)`/g)].map((r) => r[1]!);
    for (const route of m[2]!.matchAll(/`([^`]+)`/g)) out.set(`${m[1]} ${route[1]}`, roles);
  }
  return out;
}

/** Objects each role's matrix consumes (or refers to), made in setup: one set per role. */
interface Fixture {
  dictKey: string;
  rollbackId: string;
  skipRule: string;
}
const fixtures = new Map<string, Fixture>();
const short = (role: string) => role.replace(/^nemutator-/, '');

interface Action {
  /** The command line, for messages. */
  name: string;
  argv: (f: Fixture) => string[];
  /** The routes it calls, as docs/security.md writes them. */
  routes: string[];
}

const actions: Action[] = [
  { name: 'status', argv: () => ['status'], routes: ['GET /api/v1/status'] },
  { name: 'nodes', argv: () => ['nodes'], routes: ['GET /api/v1/nodes'] },
  { name: 'nodes NAME', argv: () => ['nodes', 'node-1'], routes: ['GET /api/v1/nodes/{name}'] },
  { name: 'dict list', argv: () => ['dict', 'list'], routes: ['GET /api/v1/dictionary'] },
  { name: 'dict get', argv: () => ['dict', 'get', 'nemu_label_team'], routes: ['GET /api/v1/dictionary/{key}'] },
  { name: 'dict set', argv: (f) => ['dict', 'set', `${f.dictKey}_new`, 'set-by-cli'], routes: ['PUT /api/v1/dictionary/{key}'] },
  { name: 'dict del', argv: (f) => ['dict', 'del', f.dictKey], routes: ['DELETE /api/v1/dictionary/{key}'] },
  { name: 'mutations list', argv: () => ['mutations', 'list'], routes: ['GET /api/v1/mutations'] },
  { name: 'mutations get', argv: (f) => ['mutations', 'get', f.rollbackId], routes: ['GET /api/v1/mutations/{id}'] },
  { name: 'mutations rollback', argv: (f) => ['mutations', 'rollback', f.rollbackId], routes: ['POST /api/v1/mutations/{id}/rollback'] },
  { name: 'skip-rules list', argv: () => ['skip-rules', 'list'], routes: ['GET /api/v1/skip-rules'] },
  {
    name: 'skip-rules delete',
    argv: (f) => ['skip-rules', 'delete', NS, 'Deployment', f.skipRule],
    routes: ['DELETE /api/v1/skip-rules/{namespace}/{kind}/{name}'],
  },
  { name: 'secrets rotate', argv: () => ['secrets', 'rotate', 'secret/app/db'], routes: ['POST /api/v1/secrets/rotate'] },
  { name: 'secrets status', argv: () => ['secrets', 'status'], routes: ['GET /api/v1/secrets/status'] },
  { name: 'whatif', argv: () => ['whatif'], routes: ['GET /api/v1/whatif'] },
  { name: 'audit', argv: () => ['audit'], routes: ['GET /api/v1/audit'] },
  // Captures (POST), then fetches the profile it made (GET /profiles/{id}).
  {
    name: 'flame',
    argv: (f) => ['flame', `${NS}/api-p`, '-t', '1s', '-o', join(w.dir, `${f.dictKey}.folded`)],
    routes: ['POST /api/v1/profiles', 'GET /api/v1/profiles/{id}'],
  },
];

beforeAll(async () => {
  w = await startClusterWorld({
    namespaces: [NS, USERS_NS],
    history: { namespace: NS, deployment: 'web' },
    log: capture('controller'),
    agent: {
      profile: TINY_PROFILE,
      rotate: async () => ({ rotate: { pathsChecked: 1, newVersions: 0, watchersNotified: 0 } }),
      secretStatus: async () => ({
        secretStatus: { holders: [{ podUid: 'u-api-p', namespace: NS, pod: 'api-p', container: 'app', path: 'secret/app/db', version: 1, ackedVersion: 1 }] },
      }),
    },
  });
  tokensUsed.add(w.kube.adminToken);
  tokensUsed.add(AGENT_TOKEN);
  caFile = caFileOf(w.c);
  w.podOnNode(NS, 'api-p');
  // One set of objects per role (and for a user bound to nothing), so each role's matrix
  // consumes its own: a dictionary key, a mutation to roll back, a skip rule to lift.
  for (const role of [...ROLES, 'unbound']) {
    const s = short(role).replace(/-/g, '_');
    const dictKey = `nemu_label_value_${s}`;
    expect((await admin('PUT', `/dictionary/${dictKey}`, { value: 'x' })).status).toBe(200);
    const rollbackId = await mutationOf(`roll-${short(role)}`);
    await skipRuleFor(`skip-${short(role)}`);
    fixtures.set(role, { dictKey, rollbackId, skipRule: `skip-${short(role)}` });
  }
}, 180_000);

afterAll(async () => {
  await w?.stop();
});

describe('the nemutator CLI with the shipped roles, in a cluster', () => {
  it("the controller's /metrics: the scraper role's token reads it, the viewer's gets 403 and no token 401, each with its code", async () => {
    const url = w.c.webhookUrl.replace('/mutate', '/metrics');
    const scraper = await userBoundTo('metrics-scraper', SCRAPER);
    const viewer = await userBoundTo('metrics-viewer', 'nemutator-viewer');
    const page = await apiFetch(w.c, url, { headers: { authorization: `Bearer ${scraper}` } });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('nemutator_admission_reviews_total');
    const refused = await apiFetch(w.c, url, { headers: { authorization: `Bearer ${viewer}` } });
    expect(refused.status).toBe(403);
    const body = (await refused.json()) as { code: string; message: string };
    expect(body.code).toBe('NEMU_ERR_FORBIDDEN');
    expect(body.message).toContain(`${userName('metrics-viewer')} may not get metrics.nemutator.io`);
    const anonymous = await apiFetch(w.c, url);
    expect(anonymous.status).toBe(401);
    expect(((await anonymous.json()) as { code: string }).code).toBe('NEMU_ERR_UNAUTHORIZED');
  });

  it('allows and refuses each command for each shipped role exactly as the route table of docs/security.md says', async () => {
    const documented = documentedRoles();
    // Every route the matrix uses is in the doc, and every role the doc names is shipped.
    for (const a of actions) for (const r of a.routes) expect(documented.has(r), `docs/security.md has a row for ${r}`).toBe(true);
    expect(new Set([...documented.values()].flat())).toEqual(new Set([...ROLES, SCRAPER]));
    const manifest = readFileSync('manifests/rbac/user-roles.yaml', 'utf8');
    for (const role of [...ROLES, SCRAPER]) expect(manifest).toContain(`name: ${role}\n`);

    const outcomes: string[] = [];
    const expected: string[] = [];
    for (const role of [...ROLES, 'unbound']) {
      const token = await userBoundTo(`cli-${short(role)}`, role === 'unbound' ? undefined : role);
      const f = fixtures.get(role)!;
      for (const a of actions) {
        const granted = a.routes.map((r) => documented.get(r)!.includes(role));
        // A command whose routes disagree about the role would be half allowed: not a case the doc can decide.
        expect(new Set(granted).size, `${a.name}: the routes ${a.routes.join(', ')} name the same roles`).toBe(1);
        const allowed = granted[0]!;
        const r = await cli(token, ...a.argv(f));
        const got = r.code === 0 ? 'allowed' : /NEMU_ERR_FORBIDDEN/.test(r.err) ? 'forbidden' : `failed (${r.code}: ${r.err.slice(0, 200)})`;
        outcomes.push(`${role}: ${a.name} → ${got}`);
        expected.push(`${role}: ${a.name} → ${allowed ? 'allowed' : 'forbidden'}`);
        if (r.code !== 0 && got === 'forbidden')
          expect(r.err).toMatch(new RegExp(`^error: NEMU_ERR_FORBIDDEN: ${userName(`cli-${short(role)}`)} may not `, 'm'));
      }
    }
    expect(outcomes).toEqual(expected);

    // Refused writes changed nothing; allowed ones did what they say.
    for (const role of [...ROLES, 'unbound']) {
      const f = fixtures.get(role)!;
      const editor = role === 'nemutator-dictionary-editor';
      expect((await admin('GET', `/dictionary/${f.dictKey}`)).status, `${role}: ${f.dictKey}`).toBe(editor ? 404 : 200);
      expect((await admin('GET', `/dictionary/${f.dictKey}_new`)).status, `${role}: ${f.dictKey}_new`).toBe(editor ? 200 : 404);
      expect(Boolean((await admin('GET', `/mutations/${f.rollbackId}`)).body.rolledBack), `${role}: mutation rolled back`).toBe(role === 'nemutator-operator');
      const rules = (await admin('GET', `/skip-rules?namespace=${NS}`)).body.items as Obj[];
      expect(
        rules.some((x) => x.name === f.skipRule),
        `${role}: skip rule ${f.skipRule} still there`,
      ).toBe(!editor);
    }
  }, 120_000);

  it('audits a scripted session of writes with their users, and keeps tokens and secret values out of the audit, logs, metrics and CLI output', async () => {
    const [viewer, editor, operator, profiler, rotator] = await Promise.all([
      userBoundTo('audit-viewer', 'nemutator-viewer'),
      userBoundTo('audit-editor', 'nemutator-dictionary-editor'),
      userBoundTo('audit-operator', 'nemutator-operator'),
      userBoundTo('audit-profiler', 'nemutator-profiler'),
      userBoundTo('audit-rotator', 'nemutator-secrets-rotator'),
    ]);
    const rollbackId = await mutationOf('audited');
    expect((await admin('PUT', '/dictionary/nemu_label_value_old', { value: 'old' })).status).toBe(200);
    const outputs: CliResult[] = [];
    const ok = async (token: string, ...args: string[]) => {
      const r = await cli(token, ...args);
      expect(r.code, `nemutator ${args.join(' ')}: ${r.err}`).toBe(0);
      outputs.push(r);
      return r;
    };

    // The session, each write by the role made for it; and one the viewer may not make.
    const dbUrl = `postgres://app:${SECRET}@db:5432`;
    await ok(editor, 'dict', 'set', 'nemu_env_db', dbUrl);
    // `dict get` returns the value to a caller allowed to read it: that is its job, so its
    // output is checked but kept out of the corpus searched for leaks.
    expect((await cli(editor, 'dict', 'get', 'nemu_env_db')).out).toBe(dbUrl);
    await ok(editor, 'dict', 'set', 'nemu_label_value_audited', 'audited');
    await ok(editor, 'dict', 'del', 'nemu_label_value_old');
    await ok(operator, 'mutations', 'rollback', rollbackId);
    await ok(editor, 'skip-rules', 'delete', NS, 'Deployment', 'audited');
    await ok(rotator, 'secrets', 'rotate', 'secret/app/db');
    await ok(profiler, 'flame', `${NS}/api-p`, '-t', '1s', '-o', join(w.dir, 'audited.folded'));
    const refused = await cli(viewer, 'dict', 'set', 'nemu_env_db', 'postgres://viewer-was-here');
    outputs.push(refused);
    expect(refused.code).not.toBe(0);
    expect(refused.err).toContain('NEMU_ERR_FORBIDDEN');
    expect((await admin('GET', '/dictionary/nemu_env_db')).body.value).toBe(dbUrl);

    const script = [
      { user: userName('audit-editor'), action: 'update dictionary', target: { key: 'nemu_env_db' }, outcome: 'succeeded' },
      { user: userName('audit-editor'), action: 'update dictionary', target: { key: 'nemu_label_value_audited' }, outcome: 'succeeded' },
      { user: userName('audit-editor'), action: 'delete dictionary', target: { key: 'nemu_label_value_old' }, outcome: 'succeeded' },
      { user: userName('audit-operator'), action: 'create mutations/rollback', target: { id: rollbackId }, outcome: 'succeeded' },
      { user: userName('audit-editor'), action: 'delete skiprules', target: { namespace: NS, kind: 'Deployment', name: 'audited' }, outcome: 'succeeded' },
      { user: userName('audit-rotator'), action: 'create secretrotations', target: { secretPath: 'secret/app/db' }, outcome: 'succeeded' },
      { user: userName('audit-profiler'), action: 'create profiles', target: { namespace: NS, pod: 'api-p' }, outcome: 'succeeded' },
      { user: userName('audit-viewer'), action: 'update dictionary', target: { key: 'nemu_env_db' }, outcome: 'denied' },
    ];
    const ours = new Set(script.map((s) => s.user));

    const json = await ok(viewer, 'audit', '--limit', '1000', '-o', 'json');
    const entries = (JSON.parse(json.out) as AuditEntry[]).filter((e) => ours.has(e.user));
    // Newest first: the session backwards.
    expect(entries.map((e) => ({ user: e.user, action: e.action, target: e.target, outcome: e.outcome }))).toEqual(
      [...script].reverse().map((s) => ({ ...s, target: expect.objectContaining(s.target) })),
    );
    expect(entries.find((e) => e.outcome === 'denied')).toMatchObject({ status: 403, code: 'NEMU_ERR_FORBIDDEN' });
    expect(entries.every((e, i) => i === 0 || e.time <= entries[i - 1]!.time)).toBe(true);

    // The table form says the same, one line per record.
    const table = await ok(viewer, 'audit', '--limit', '1000');
    const lines = table.out.split('\n');
    expect(lines[0]).toMatch(/^TIME\s+USER\s+ACTION\s+NAMESPACE\s+TARGET\s+OUTCOME/);
    const ourLines = lines.filter((l) => [...ours].some((u) => l.includes(` ${u} `)));
    expect(ourLines).toHaveLength(script.length);
    [...script].reverse().forEach((s, i) => {
      expect(ourLines[i]).toContain(s.user);
      expect(ourLines[i]).toContain(s.action);
      expect(ourLines[i]).toMatch(s.outcome === 'denied' ? /denied \(403 NEMU_ERR_FORBIDDEN\)\s*$/ : /succeeded\s*$/);
    });
    // --user narrows to one caller.
    const mine = JSON.parse((await ok(viewer, 'audit', '--user', userName('audit-operator'), '-o', 'json')).out) as AuditEntry[];
    expect(mine.map((e) => e.action)).toEqual(['create mutations/rollback']);

    // Nothing the controller keeps or shows holds a token or the secret value.
    const metrics = await apiFetch(w.c, w.c.webhookUrl.replace('/mutate', '/metrics'), { headers: { authorization: `Bearer ${w.kube.adminToken}` } });
    expect(metrics.status).toBe(200);
    const metricsText = await metrics.text();
    expect(metricsText).toContain('nemutator_api_requests_total');
    const corpus: Array<[string, string]> = [
      ['audit (json)', json.out],
      ['audit (table)', table.out],
      ['metrics', metricsText],
      ...logs.map((l, i): [string, string] => [`log line ${i}`, l]),
      ...outputs.map((o, i): [string, string] => [`cli output ${i}`, `${o.out}\n${o.err}`]),
    ];
    expect(logs.length).toBeGreaterThan(0);
    expect(logs.some((l) => l.includes('api request'))).toBe(true);
    const needles = [...tokensUsed, SECRET];
    const leaks = corpus.flatMap(([where, text]) =>
      needles.filter((n) => text.includes(n)).map((n) => `${where} holds ${n === SECRET ? 'the secret value' : `a token (${n.slice(0, 12)}…)`}`),
    );
    expect(leaks).toEqual([]);
  }, 120_000);
});
