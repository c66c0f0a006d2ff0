/**
 * The controller's RBAC is the calls its code makes, no more and no less. The
 * @kubernetes/client-node calls in controller/src (`readNamespacedLease`, `patchNamespacedPodResize`,
 * informers, …) are read from the source and turned into the verb and resource the apiserver
 * authorizes; every one must be granted by the controller's roles (the base or a component),
 * and every right the roles grant must be used by some call. A new call without its rule, or
 * a rule left behind after its call was removed, fails here.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

import { componentNames, type KubeObject,render, repoRoot } from './render.ts';

type Rule = { apiGroups?: string[]; resources?: string[]; verbs: string[] };

/** Client method kind → [API group, resource]. A kind not listed is not an apiserver call. */
const KINDS: Record<string, [string, string]> = {
  Pod: ['', 'pods'],
  PodResize: ['', 'pods/resize'],
  PodEviction: ['', 'pods/eviction'],
  PodStatus: ['', 'pods/status'],
  Node: ['', 'nodes'],
  Namespace: ['', 'namespaces'],
  Secret: ['', 'secrets'],
  ConfigMap: ['', 'configmaps'],
  Event: ['', 'events'],
  Deployment: ['apps', 'deployments'],
  DeploymentScale: ['apps', 'deployments/scale'],
  ReplicaSet: ['apps', 'replicasets'],
  StatefulSet: ['apps', 'statefulsets'],
  DaemonSet: ['apps', 'daemonsets'],
  Lease: ['coordination.k8s.io', 'leases'],
  TokenReview: ['authentication.k8s.io', 'tokenreviews'],
  SubjectAccessReview: ['authorization.k8s.io', 'subjectaccessreviews'],
  MutatingWebhookConfiguration: ['admissionregistration.k8s.io', 'mutatingwebhookconfigurations'],
  PodDisruptionBudget: ['policy', 'poddisruptionbudgets'],
};
/** The client classes whose calls KINDS covers; a new one must be added here (and its kinds above). */
const API_CLASSES = ['CoreV1Api', 'AppsV1Api', 'CoordinationV1Api', 'AuthenticationV1Api', 'AuthorizationV1Api', 'AdmissionregistrationV1Api', 'PolicyV1Api'];
const VERB: Record<string, string> = { read: 'get', list: 'list', create: 'create', replace: 'update', patch: 'patch', delete: 'delete' };

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    const p = join(dir, d.name);
    if (d.isDirectory()) return sources(p);
    return d.name.endsWith('.ts') && !d.name.endsWith('.test.ts') ? [p] : [];
  });
}

/** "verb group/resource" → where the code calls it. */
function callsInCode(): Map<string, string[]> {
  const calls = new Map<string, string[]>();
  const add = (key: string, where: string) => calls.set(key, [...(calls.get(key) ?? []), where]);
  for (const file of sources(join(repoRoot, 'controller', 'src'))) {
    const text = readFileSync(file, 'utf8');
    const rel = relative(repoRoot, file);
    for (const m of text.matchAll(/makeApiClient\((\w+)\)/g)) {
      if (!API_CLASSES.includes(m[1]!)) throw new Error(`${rel} uses ${m[1]}: add it and its kinds to test/manifests/rbac-code.test.ts`);
    }
    const informer = /\bmakeInformer\b/.test(text);
    for (const m of text.matchAll(/\.(read|list|create|replace|patch|delete)(Namespaced)?([A-Z]\w*?)(ForAllNamespaces)?\(/g)) {
      const target = KINDS[m[3]!];
      if (!target) continue; // not a client call (createHttpsServer, a wrapper's own method, …)
      const [group, resource] = target;
      const where = `${rel}: ${m[0].slice(1, -1)}`;
      add(`${VERB[m[1]!]} ${group}/${resource}`, where);
      // An informer lists, then watches from the list's resourceVersion.
      if (m[1] === 'list' && informer) add(`watch ${group}/${resource}`, where);
    }
  }
  return calls;
}

let granted = new Map<string, string[]>();
beforeAll(() => {
  const seen = new Map<string, KubeObject>();
  for (const set of [render(), ...componentNames().map((c) => render([c]))]) for (const o of set) seen.set(`${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`, o);
  const objects = [...seen.values()];
  const bound = new Set(
    objects
      .filter((b) => (b.kind === 'ClusterRoleBinding' || b.kind === 'RoleBinding') && (b.subjects as { name: string; namespace?: string }[]).some((s) => s.name === 'nemutator-controller' && s.namespace === 'nemutator'))
      .map((b) => `${(b.roleRef as { kind: string }).kind}/${(b.roleRef as { name: string }).name}`),
  );
  granted = new Map();
  for (const role of objects.filter((o) => bound.has(`${o.kind}/${o.metadata.name}`))) {
    for (const r of role.rules as Rule[]) {
      for (const g of r.apiGroups ?? []) for (const res of r.resources ?? []) for (const v of r.verbs) {
        const key = `${v} ${g}/${res}`;
        granted.set(key, [...(granted.get(key) ?? []), `${role.kind} ${role.metadata.name}`]);
      }
    }
  }
});

describe("the controller's RBAC against the calls in controller/src", () => {
  it('grants every call the code makes', () => {
    const calls = callsInCode();
    expect(calls.size).toBeGreaterThan(10);
    const missing = [...calls].filter(([k]) => !granted.has(k)).map(([k, where]) => `${k} (${where.join('; ')})`);
    expect(missing, 'calls without a rule in manifests/controller/rbac.yaml or a component').toEqual([]);
  });

  it('grants nothing the code does not call', () => {
    const calls = callsInCode();
    const unused = [...granted].filter(([k]) => !calls.has(k)).map(([k, roles]) => `${k} (${roles.join(', ')})`);
    expect(unused, 'rules no call in controller/src needs').toEqual([]);
  });
});
