/**
 * docs/security.md says who may do what; the manifests decide it. This test keeps the two
 * equal, in both directions:
 * - every rule of every role bound to Nemutator's own service accounts (the base and each
 *   component of manifests/components) is a row of the permission tables, and every row is
 *   a rule;
 * - the route table's "shipped roles" column is what the shipped roles really grant: for
 *   each route's verb and resource, exactly the listed roles allow it; and no role grants a
 *   nemutator.io resource, or a write, that no route checks;
 * - no role is aggregated into the built-in admin/edit/view roles.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

import { componentNames, type KubeObject,render, repoRoot } from './render.ts';

type Rule = { apiGroups?: string[]; resources?: string[]; resourceNames?: string[]; verbs: string[]; nonResourceURLs?: string[] };
type Role = KubeObject & { rules?: Rule[]; aggregationRule?: unknown };
type Binding = KubeObject & { roleRef: { kind: string; name: string }; subjects?: { kind: string; name: string; namespace?: string }[] };

const GROUP = 'nemutator.io';
const SERVICE_ACCOUNTS = ['nemutator-controller', 'nemutator-agent'];

/** The rows of the first markdown table after `heading`, as column → cell text. */
function tableAfter(markdown: string, heading: string): Array<Record<string, string>> {
  const lines = markdown.split('\n');
  const at = lines.findIndex((l) => l.trim() === heading);
  if (at < 0) throw new Error(`docs/security.md has no heading "${heading}"`);
  let i = at + 1;
  while (i < lines.length && !lines[i]!.trimStart().startsWith('|')) {
    if (/^#{1,6} /.test(lines[i]!)) throw new Error(`no table under "${heading}" before the next heading`);
    i++;
  }
  const cells = (line: string) => line.trim().replace(/^\|/, '').replace(/\|$/, '').split('|').map((c) => c.trim());
  const header = cells(lines[i]!);
  if (!/^\|[\s|:-]+\|$/.test(lines[i + 1]!.trim())) throw new Error(`the table under "${heading}" has no separator line`);
  const rows: Array<Record<string, string>> = [];
  for (i += 2; i < lines.length && lines[i]!.trimStart().startsWith('|'); i++) {
    const row = cells(lines[i]!);
    if (row.length !== header.length) throw new Error(`docs/security.md, table "${heading}": "${lines[i]}" has ${row.length} cells, the header ${header.length}`);
    rows.push(Object.fromEntries(header.map((h, j) => [h, row[j]!])));
  }
  return rows;
}

/** The `code` spans of a cell; `""` is the core API group. "—" alone is an empty list. */
function codes(cell: string): string[] {
  return [...cell.matchAll(/`([^`]*)`/g)].map((m) => (m[1] === '""' ? '' : m[1]!));
}

/** One rule, in a form that compares equal whatever the order of its lists. */
function ruleKey(role: string, r: { apiGroups?: string[]; resources?: string[]; resourceNames?: string[]; verbs: string[] }): string {
  const list = (xs: string[] | undefined) => [...(xs ?? [])].sort().join(',');
  return `${role} | groups=${list(r.apiGroups)} | resources=${list(r.resources)} | names=${list(r.resourceNames)} | verbs=${list(r.verbs)}`;
}

const id = (o: KubeObject) => `${o.kind} ${o.metadata.name}${o.metadata.namespace ? ` in ${o.metadata.namespace}` : ''}`;

let doc = '';
/** The base and every component, each object once (a component repeats the whole base). */
let objects: KubeObject[] = [];
let base: KubeObject[] = [];
const byComponent = new Map<string, KubeObject[]>();
let userRoles: Role[] = [];

beforeAll(() => {
  doc = readFileSync(join(repoRoot, 'docs', 'security.md'), 'utf8');
  base = render();
  for (const c of componentNames()) byComponent.set(c, render([c]));
  const seen = new Map<string, KubeObject>();
  for (const set of [base, ...byComponent.values()]) {
    for (const o of set) if (o.kind !== 'Deployment' || !seen.has(id(o))) seen.set(id(o), o);
  }
  objects = [...seen.values()];
  userRoles = objects.filter((o): o is Role => o.kind === 'ClusterRole' && ((o as Role).rules ?? []).some((r) => r.apiGroups?.includes(GROUP)));
});

/** The roles bound to Nemutator's own service accounts, by "Kind name". */
function ownRoles(): Role[] {
  const bound = new Set<string>();
  for (const b of objects.filter((o): o is Binding => o.kind === 'ClusterRoleBinding' || o.kind === 'RoleBinding')) {
    if ((b.subjects ?? []).some((s) => s.kind === 'ServiceAccount' && s.namespace === 'nemutator' && SERVICE_ACCOUNTS.includes(s.name))) {
      bound.add(`${b.roleRef.kind}/${b.roleRef.name}/${b.roleRef.kind === 'Role' ? b.metadata.namespace : ''}`);
    }
  }
  return objects.filter((o): o is Role => (o.kind === 'ClusterRole' || o.kind === 'Role') && bound.has(`${o.kind}/${o.metadata.name}/${o.kind === 'Role' ? o.metadata.namespace : ''}`));
}

describe('docs/security.md and the manifests agree on RBAC', () => {
  it('lists every rule of the controller and agent roles, base and components, and no other', () => {
    const rows = [...tableAfter(doc, "## The controller's own permissions"), ...tableAfter(doc, "## The agent's own permissions")];
    const documented: string[] = [];
    for (const row of rows) {
      const by = /^(ClusterRole|Role) `([^`]+)`/.exec(row['granted by'] ?? '');
      if (!by) throw new Error(`docs/security.md: "granted by" must start with ClusterRole or Role and a \`name\`: ${JSON.stringify(row)}`);
      const role = objects.find((o) => o.kind === by[1] && o.metadata.name === by[2]);
      expect(role, `docs/security.md names ${by[1]} ${by[2]}, which no manifest ships`).toBeDefined();
      // Scope: a ClusterRole is cluster-wide (even bound with a RoleBinding it would be the
      // controller's own namespace only); a Role is its namespace.
      expect(row.scope, `${by[1]} ${by[2]}: scope`).toBe(by[1] === 'Role' ? `namespace \`${role!.metadata.namespace}\`` : 'cluster');
      // A role only a component ships says which component: "(component `resize`)".
      const component = /\(component `([^`]+)`\)/.exec(row['granted by']!)?.[1];
      const ships = (set: KubeObject[] | undefined) => (set ?? []).some((o) => o.kind === by[1] && o.metadata.name === by[2]);
      if (ships(base)) expect(component, `${by[1]} ${by[2]} is in the base, not a component`).toBeUndefined();
      else expect(ships(byComponent.get(component ?? '')), `${by[1]} ${by[2]}: "(component \`<name>\`)" names the component that ships it`).toBe(true);
      expect(row.why?.length, `${by[1]} ${by[2]}: every rule says why`).toBeGreaterThan(10);
      documented.push(ruleKey(`${by[1]} ${by[2]}`, { apiGroups: codes(row.apiGroups!), resources: codes(row.resources!), resourceNames: codes(row.resourceNames!), verbs: codes(row.verbs!) }));
    }
    const shipped = ownRoles().flatMap((r) => (r.rules ?? []).map((rule) => ruleKey(`${r.kind} ${r.metadata.name}`, rule)));
    expect(ownRoles().map((r) => r.metadata.name)).toEqual(expect.arrayContaining(['nemutator-controller', 'nemutator-agent', ...componentNames()
          // The scheduler component grants the controller nothing: its rights are the second
          // kube-scheduler's, on that scheduler's own service account (docs/scheduler-opt-in.md).
          .filter((c) => c !== 'scheduler')
          .map((c) => `nemutator-controller-${c}`)]));
    expect(documented.sort(), 'rows of the permission tables in docs/security.md = rules in the manifests').toEqual(shipped.sort());
  });

  it('aggregates no role into admin, edit or view, and has no aggregated role of its own', () => {
    for (const o of objects.filter((x) => x.kind === 'ClusterRole' || x.kind === 'Role')) {
      const aggregate = Object.keys(o.metadata.labels ?? {}).filter((k) => k.startsWith('rbac.authorization.k8s.io/aggregate-to-'));
      expect(aggregate, id(o)).toEqual([]);
      expect((o as Role).aggregationRule, id(o)).toBeUndefined();
    }
    expect(userRoles.map((r) => r.metadata.name).sort()).toEqual(
      ['nemutator-dictionary-editor', 'nemutator-metrics-scraper', 'nemutator-operator', 'nemutator-profiler', 'nemutator-secrets-rotator', 'nemutator-viewer'].sort(),
    );
  });

  it('grants each route to exactly the roles the route table lists', () => {
    const routes = tableAfter(doc, '## Routes and permissions').filter((r) => r.verb !== '—');
    expect(routes.length).toBeGreaterThan(20);
    const allows = (role: Role, verb: string, resource: string) => (role.rules ?? []).some((r) => r.apiGroups?.includes(GROUP) && r.resources?.includes(resource) && r.verbs.includes(verb) && !r.resourceNames);
    for (const route of routes) {
      const [resource] = codes(route.resource!);
      const verb = route.verb!;
      const listed = codes(route['shipped roles']!).sort();
      const granted = userRoles.filter((r) => allows(r, verb, resource!)).map((r) => r.metadata.name).sort();
      expect(granted, `${route.method} ${route.route}: ${verb} ${resource}`).toEqual(listed);
    }
  });

  it('grants no nemutator.io resource that no route checks, and no write beyond the route table', () => {
    const routes = tableAfter(doc, '## Routes and permissions').filter((r) => r.verb !== '—');
    const checked = new Set(routes.map((r) => `${r.verb} ${codes(r.resource!)[0]}`));
    const resources = new Set(routes.map((r) => codes(r.resource!)[0]));
    const granted = userRoles.flatMap((role) =>
      (role.rules ?? []).flatMap((r) => {
        expect(r.apiGroups, `${role.metadata.name}: user roles grant nemutator.io only`).toEqual([GROUP]);
        expect(r.resourceNames, `${role.metadata.name}: no resourceNames (the controller does not send names)`).toBeUndefined();
        return r.resources!.flatMap((res) => r.verbs.map((v) => ({ role: role.metadata.name, verb: v, resource: res })));
      }),
    );
    for (const g of granted) {
      expect(resources.has(g.resource), `${g.role} grants ${g.resource}, which no route checks`).toBe(true);
      // Reads may be granted as get+list together (a later route of the same resource is
      // covered); anything else must be a permission a route checks.
      if (g.verb !== 'get' && g.verb !== 'list') expect(checked.has(`${g.verb} ${g.resource}`), `${g.role} grants ${g.verb} ${g.resource}, which no route checks`).toBe(true);
    }
    // And the other way: every resource and verb of the route table is granted by some role.
    for (const p of checked) expect(granted.some((g) => `${g.verb} ${g.resource}` === p), `no shipped role grants ${p}`).toBe(true);
  });

  it('documents each shipped user role under "## Roles"', () => {
    const documented = tableAfter(doc, '## Roles').map((r) => codes(r.role!)[0]).sort();
    expect(documented).toEqual(userRoles.map((r) => r.metadata.name).sort());
  });
});

describe('the markdown table reader', () => {
  it('reads the first table under a heading and refuses a ragged row', () => {
    const md = ['# T', '## A', 'text', '', '| a | b |', '|---|---|', '| `x`, `""` | — |', '', '## B', '| a |', '|---|', '| 1 | 2 |'].join('\n');
    expect(tableAfter(md, '## A')).toEqual([{ a: '`x`, `""`', b: '—' }]);
    expect(codes(tableAfter(md, '## A')[0]!.a!)).toEqual(['x', '']);
    expect(codes('—')).toEqual([]);
    expect(() => tableAfter(md, '## B')).toThrow(/has 2 cells, the header 1/);
    expect(() => tableAfter(md, '## C')).toThrow(/no heading/);
  });
});
