// Authorization from the RBAC objects in the store, following kube-apiserver's RBAC
// authorizer (plugin/pkg/auth/authorizer/rbac): subjects, role refs, rule matching with
// wildcards, "*/subresource", resourceNames, nonResourceURLs and ClusterRole aggregation.
import type { UserInfo } from './auth.ts';
import { type LabelSelectorObject, matchesLabelSelectorObject } from './selectors.ts';
import type { KubeObject } from './store.ts';

export interface ResourceAttributes {
  namespace?: string;
  verb: string;
  group?: string;
  version?: string;
  resource?: string;
  subresource?: string;
  name?: string;
}

export interface NonResourceAttributes {
  path: string;
  verb: string;
}

export interface Decision {
  allowed: boolean;
  reason: string;
}

export interface RbacObjects {
  clusterRoles(): KubeObject[];
  clusterRoleBindings(): KubeObject[];
  roles(namespace: string): KubeObject[];
  roleBindings(namespace: string): KubeObject[];
}

interface PolicyRule {
  verbs?: string[];
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
  nonResourceURLs?: string[];
}

interface Subject {
  kind: string;
  name: string;
  namespace?: string;
  apiGroup?: string;
}

interface RoleRef {
  kind: string;
  name: string;
}

export function authorize(user: UserInfo, attrs: { resource?: ResourceAttributes; nonResource?: NonResourceAttributes }, rbac: RbacObjects): Decision {
  if (user.groups.includes('system:masters')) return { allowed: true, reason: '' };
  const clusterRoles = rbac.clusterRoles();
  const rulesOfClusterRole = (name: string): PolicyRule[] | undefined => {
    const role = clusterRoles.find((r) => r.metadata.name === name);
    if (!role) return undefined;
    const aggregation = role['aggregationRule'] as { clusterRoleSelectors?: LabelSelectorObject[] } | undefined;
    if (aggregation?.clusterRoleSelectors?.length) {
      const rules: PolicyRule[] = [...((role['rules'] as PolicyRule[] | undefined) ?? [])];
      for (const other of clusterRoles) {
        if (other === role) continue;
        if (aggregation.clusterRoleSelectors.some((s) => matchesLabelSelectorObject(s, other.metadata.labels))) {
          rules.push(...((other['rules'] as PolicyRule[] | undefined) ?? []));
        }
      }
      return rules;
    }
    return (role['rules'] as PolicyRule[] | undefined) ?? [];
  };
  const allows = (rules: PolicyRule[]): boolean =>
    rules.some((rule) =>
      attrs.resource ? resourceRuleAllows(rule, attrs.resource) : attrs.nonResource ? nonResourceRuleAllows(rule, attrs.nonResource) : false,
    );

  for (const binding of rbac.clusterRoleBindings()) {
    const subject = matchingSubject(user, binding, '');
    if (!subject) continue;
    const ref = binding['roleRef'] as RoleRef | undefined;
    if (ref?.kind !== 'ClusterRole') continue;
    const rules = rulesOfClusterRole(ref.name);
    if (rules && allows(rules)) {
      return {
        allowed: true,
        reason: `RBAC: allowed by ClusterRoleBinding "${binding.metadata.name}" of ClusterRole "${ref.name}" to ${describeSubject(subject)}`,
      };
    }
  }
  const ns = attrs.resource?.namespace;
  if (ns) {
    const roles = rbac.roles(ns);
    for (const binding of rbac.roleBindings(ns)) {
      const subject = matchingSubject(user, binding, ns);
      if (!subject) continue;
      const ref = binding['roleRef'] as RoleRef | undefined;
      if (!ref) continue;
      const rules =
        ref.kind === 'ClusterRole'
          ? rulesOfClusterRole(ref.name)
          : ref.kind === 'Role'
            ? ((roles.find((r) => r.metadata.name === ref.name)?.['rules'] as PolicyRule[] | undefined) ?? undefined)
            : undefined;
      if (rules && allows(rules)) {
        return {
          allowed: true,
          reason: `RBAC: allowed by RoleBinding "${binding.metadata.name}/${ns}" of ${ref.kind} "${ref.name}" to ${describeSubject(subject)}`,
        };
      }
    }
  }
  return { allowed: false, reason: '' };
}

function matchingSubject(user: UserInfo, binding: KubeObject, bindingNamespace: string): Subject | undefined {
  const subjects = (binding['subjects'] as Subject[] | undefined) ?? [];
  return subjects.find((s) => {
    switch (s.kind) {
      case 'User':
        return s.name === user.username;
      case 'Group':
        return user.groups.includes(s.name);
      case 'ServiceAccount': {
        const ns = s.namespace || bindingNamespace;
        return user.username === `system:serviceaccount:${ns}:${s.name}`;
      }
      default:
        return false;
    }
  });
}

function describeSubject(s: Subject): string {
  if (s.kind === 'ServiceAccount') return `ServiceAccount "${s.name}/${s.namespace ?? ''}"`;
  return `${s.kind} "${s.name}"`;
}

function has(list: string[] | undefined, value: string): boolean {
  return !!list && (list.includes('*') || list.includes(value));
}

function resourceRuleAllows(rule: PolicyRule, a: ResourceAttributes): boolean {
  if (!has(rule.verbs, a.verb)) return false;
  if (!has(rule.apiGroups, a.group ?? '')) return false;
  const requested = a.subresource ? `${a.resource}/${a.subresource}` : (a.resource ?? '');
  const resourceOk = (rule.resources ?? []).some((r) => r === '*' || r === requested || (!!a.subresource && r === `*/${a.subresource}`));
  if (!resourceOk) return false;
  if (!rule.resourceNames || rule.resourceNames.length === 0) return true;
  return !!a.name && rule.resourceNames.includes(a.name);
}

function nonResourceRuleAllows(rule: PolicyRule, a: NonResourceAttributes): boolean {
  if (!has(rule.verbs, a.verb)) return false;
  return (rule.nonResourceURLs ?? []).some((u) => u === '*' || u === a.path || (u.endsWith('*') && a.path.startsWith(u.slice(0, -1))));
}

/** The bootstrap roles a fresh cluster has that matter to clients of the double. */
export function bootstrapRbac(): { clusterRoles: KubeObject[]; clusterRoleBindings: KubeObject[] } {
  const role = (name: string, rules: PolicyRule[], labels: Record<string, string> = {}): KubeObject => ({
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRole',
    metadata: {
      name,
      labels: { 'kubernetes.io/bootstrapping': 'rbac-defaults', ...labels },
      annotations: { 'rbac.authorization.kubernetes.io/autoupdate': 'true' },
    },
    rules,
  });
  const binding = (name: string, roleName: string, subjects: Subject[]): KubeObject => ({
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRoleBinding',
    metadata: { name, labels: { 'kubernetes.io/bootstrapping': 'rbac-defaults' }, annotations: { 'rbac.authorization.kubernetes.io/autoupdate': 'true' } },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: roleName },
    subjects,
  });
  const group = (name: string): Subject => ({ apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name });
  return {
    clusterRoles: [
      role('cluster-admin', [
        { apiGroups: ['*'], resources: ['*'], verbs: ['*'] },
        { nonResourceURLs: ['*'], verbs: ['*'] },
      ]),
      role('system:discovery', [
        {
          nonResourceURLs: ['/api', '/api/*', '/apis', '/apis/*', '/healthz', '/livez', '/openapi', '/openapi/*', '/readyz', '/version', '/version/'],
          verbs: ['get'],
        },
      ]),
      role('system:basic-user', [
        { apiGroups: ['authorization.k8s.io'], resources: ['selfsubjectaccessreviews', 'selfsubjectrulesreviews'], verbs: ['create'] },
        { apiGroups: ['authentication.k8s.io'], resources: ['selfsubjectreviews'], verbs: ['create'] },
      ]),
      role('system:public-info-viewer', [{ nonResourceURLs: ['/healthz', '/livez', '/readyz', '/version', '/version/'], verbs: ['get'] }]),
      role('system:service-account-issuer-discovery', [
        { nonResourceURLs: ['/.well-known/openid-configuration', '/.well-known/openid-configuration/', '/openid/v1/jwks', '/openid/v1/jwks/'], verbs: ['get'] },
      ]),
      role('system:auth-delegator', [
        { apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] },
        { apiGroups: ['authorization.k8s.io'], resources: ['subjectaccessreviews'], verbs: ['create'] },
      ]),
      role(
        'view',
        [
          {
            apiGroups: ['', 'apps', 'policy', 'coordination.k8s.io'],
            resources: [
              'pods',
              'pods/status',
              'services',
              'configmaps',
              'events',
              'serviceaccounts',
              'deployments',
              'deployments/scale',
              'replicasets',
              'replicasets/scale',
              'statefulsets',
              'statefulsets/scale',
              'daemonsets',
              'poddisruptionbudgets',
              'leases',
              'namespaces',
            ],
            verbs: ['get', 'list', 'watch'],
          },
        ],
        { 'rbac.authorization.k8s.io/aggregate-to-edit': 'true' },
      ),
    ],
    clusterRoleBindings: [
      binding('cluster-admin', 'cluster-admin', [group('system:masters')]),
      binding('system:discovery', 'system:discovery', [group('system:authenticated')]),
      binding('system:basic-user', 'system:basic-user', [group('system:authenticated')]),
      binding('system:public-info-viewer', 'system:public-info-viewer', [group('system:authenticated'), group('system:unauthenticated')]),
      binding('system:service-account-issuer-discovery', 'system:service-account-issuer-discovery', [group('system:serviceaccounts')]),
    ],
  };
}
