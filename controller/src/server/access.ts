/**
 * Who may do what on the REST API. Every route declares a permission: a verb on a virtual
 * resource of API group `nemutator.io` (no CRD is needed, RBAC rules may name any resource).
 * In a cluster the API server decides with a SubjectAccessReview, so ordinary ClusterRoles
 * and (Cluster)RoleBindings grant Nemutator's actions (the shipped roles are in
 * manifests/rbac/user-roles.yaml; docs/security.md has the table). In local mode the only
 * caller who can authenticate is the admin token, in group system:masters.
 */
import { createHash } from 'node:crypto';
import { AuthorizationV1Api, type KubeConfig } from '@kubernetes/client-node';
import { ErrorCodes, NemuError } from '../../../common/src/errors.ts';
import type { Identity } from './router.ts';

export const API_GROUP = 'nemutator.io';

/** A verb on a resource (and subresource) of nemutator.io. */
export interface Permission {
  verb: 'get' | 'list' | 'create' | 'update' | 'delete';
  resource: string;
  subresource?: string;
}

/**
 * Where the object of a route lives:
 * - `cluster`: cluster-scoped (the dictionary, nodes, telemetry, rotations, audit);
 * - `query`: a list whose `?namespace=` narrows it to one namespace (then the namespaced
 *   permission suffices), and which needs the cluster-wide permission without it, as
 *   `kubectl get -A` does;
 * - `param:<name>`: the namespace is that path parameter;
 * - `object`: known only once the handler has loaded the object (a mutation, a profile); the
 *   handler calls `req.authorize(namespace)` before it reveals or changes anything, and the
 *   router refuses to answer a route of this scope whose handler did not.
 */
export type Scope = 'cluster' | 'query' | 'object' | `param:${string}`;

export interface Access extends Permission {
  scope: Scope;
}

/** `create mutations/rollback in namespace shop`: how a permission is named to users. */
export function describePermission(p: Permission, namespace: string | undefined): string {
  const res = p.subresource ? `${p.resource}/${p.subresource}` : p.resource;
  return `${p.verb} ${res}.${API_GROUP} ${namespace ? `in namespace ${namespace}` : 'cluster-wide'}`;
}

export interface Decision {
  allowed: boolean;
  /** Why not, as the authorizer said it (RBAC's reason), when it said one. */
  reason?: string;
}

export interface Authorizer {
  decide(user: Identity, p: Permission, namespace: string | undefined): Promise<Decision>;
}

/** The API server's own rule: system:masters is never asked. */
const MASTERS = 'system:masters';

/** Local mode: the admin token (system:masters) may do everything, nobody else anything. */
export const localAuthorizer: Authorizer = {
  async decide(user) {
    return user.groups.includes(MASTERS) ? { allowed: true } : { allowed: false, reason: 'local mode: only the admin token' };
  },
};

export interface SubjectAccessReviewOptions {
  /** How long an allow is remembered (ms); RBAC changes reach a cached caller after at most this. */
  allowTtlMs?: number;
  /** How long a refusal is remembered (ms): short, so a new binding works soon. */
  denyTtlMs?: number;
  maxEntries?: number;
  now?: () => number;
}

/** Anything that can answer a SubjectAccessReview (the API server, through client-node). */
export interface AccessReviewer {
  createSubjectAccessReview(p: { body: unknown }): Promise<{ status?: { allowed?: boolean; denied?: boolean; reason?: string } }>;
}

/**
 * In a cluster: a SubjectAccessReview per (user, groups, verb, resource, namespace), cached
 * for a few seconds so a dashboard polling the API is not one review per request.
 */
export class SubjectAccessReviewAuthorizer implements Authorizer {
  private readonly api: AccessReviewer;
  private readonly cache = new Map<string, { decision: Decision; until: number }>();
  private readonly allowTtl: number;
  private readonly denyTtl: number;
  private readonly max: number;
  private readonly now: () => number;

  constructor(kc: KubeConfig | AccessReviewer, opts: SubjectAccessReviewOptions = {}) {
    this.api = 'makeApiClient' in kc ? kc.makeApiClient(AuthorizationV1Api) : kc;
    this.allowTtl = opts.allowTtlMs ?? 10_000;
    this.denyTtl = opts.denyTtlMs ?? 2_000;
    this.max = opts.maxEntries ?? 10_000;
    this.now = opts.now ?? Date.now;
  }

  async decide(user: Identity, p: Permission, namespace: string | undefined): Promise<Decision> {
    if (user.groups.includes(MASTERS)) return { allowed: true };
    const key = createHash('sha256')
      .update(JSON.stringify([user.username, user.uid ?? '', [...user.groups].sort(), p.verb, p.resource, p.subresource ?? '', namespace ?? '']))
      .digest('base64');
    const now = this.now();
    const hit = this.cache.get(key);
    if (hit && hit.until > now) return hit.decision;
    let status;
    try {
      const review = await this.api.createSubjectAccessReview({
        body: {
          apiVersion: 'authorization.k8s.io/v1',
          kind: 'SubjectAccessReview',
          spec: {
            user: user.username,
            groups: user.groups,
            ...(user.uid ? { uid: user.uid } : {}),
            resourceAttributes: { group: API_GROUP, resource: p.resource, verb: p.verb, ...(p.subresource ? { subresource: p.subresource } : {}), ...(namespace ? { namespace } : {}) },
          },
        },
      });
      status = review.status;
    } catch (e) {
      throw new NemuError(
        ErrorCodes.AUTHZ_UNAVAILABLE,
        `cannot check permissions: the API server did not answer the SubjectAccessReview (${(e as Error).message}); the controller needs create on subjectaccessreviews.authorization.k8s.io`,
        { status: 503 },
      );
    }
    const decision: Decision = { allowed: status?.allowed === true && status.denied !== true, ...(status?.reason ? { reason: status.reason } : {}) };
    this.cache.delete(key);
    this.cache.set(key, { decision, until: now + (decision.allowed ? this.allowTtl : this.denyTtl) });
    if (this.cache.size > this.max) this.cache.delete(this.cache.keys().next().value!);
    return decision;
  }
}

/** Throws NEMU_ERR_FORBIDDEN (403) naming the missing permission unless `user` holds it. */
export async function requirePermission(authorizer: Authorizer, user: Identity, p: Permission, namespace: string | undefined): Promise<void> {
  const d = await authorizer.decide(user, p, namespace);
  if (d.allowed) return;
  throw new NemuError(
    ErrorCodes.FORBIDDEN,
    `${user.username} may not ${describePermission(p, namespace)}${d.reason ? ` (${d.reason})` : ''}; ` +
      `grant it with RBAC (docs/security.md lists the shipped roles, e.g. ${suggestRole(p)})`,
    { status: 403 },
  );
}

function suggestRole(p: Permission): string {
  if (p.resource === 'profiles') return 'ClusterRole nemutator-profiler';
  if (p.resource === 'secretrotations') return 'ClusterRole nemutator-secrets-rotator';
  if (p.verb === 'get' || p.verb === 'list') return 'ClusterRole nemutator-viewer';
  if (p.resource === 'dictionary' || p.resource === 'skiprules') return 'ClusterRole nemutator-dictionary-editor';
  return 'ClusterRole nemutator-operator';
}
