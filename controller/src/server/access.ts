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

import { ErrorCodes, NemuError } from '#common/errors.js';

import type { ApiRequest, Identity } from './router.ts';

export const API_GROUP = 'nemutator.io';

/** A verb on a resource (and subresource) of nemutator.io. */
export interface Permission {
  verb: 'get' | 'list' | 'create' | 'update' | 'delete';
  resource: string;
  subresource?: string;
}

/**
 * The namespace of the object a route acts on, looked up before its handler runs: a
 * namespace, undefined for an object of no namespace (a local-mode pid profile), null when
 * there is no such object.
 */
export type Locate = (req: ApiRequest) => Promise<string | undefined | null>;

/**
 * Where the object of a route lives:
 * - `cluster`: cluster-scoped (the dictionary, nodes, telemetry, rotations, audit);
 * - `query`: a list whose `?namespace=` narrows it to one namespace (then the namespaced
 *   permission suffices), and which needs the cluster-wide permission without it, as
 *   `kubectl get -A` does;
 * - `param:<name>`: the namespace is that path parameter;
 * - `{ request }`: the namespace the request body names (the pod to profile), read before the
 *   handler runs; the caller named it, so a refusal names it too;
 * - `{ object }`: the namespace of the stored object the route names (a mutation, a profile),
 *   found by `object` before the handler runs, so nothing is revealed or changed unchecked.
 *   An unknown object needs the cluster-wide permission, and a refusal names the namespace
 *   only to callers who may read the object there: 403 does not tell who owns an id.
 */
export type Scope = 'cluster' | 'query' | `param:${string}` | { object: Locate } | { request: (req: ApiRequest) => Promise<string | undefined> };

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
      .update(
        JSON.stringify([user.username, user.uid ?? '', [...user.groups].sort(), user.extra ?? {}, p.verb, p.resource, p.subresource ?? '', namespace ?? '']),
      )
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
            ...(user.extra ? { extra: user.extra } : {}),
            resourceAttributes: {
              group: API_GROUP,
              resource: p.resource,
              verb: p.verb,
              ...(p.subresource ? { subresource: p.subresource } : {}),
              ...(namespace ? { namespace } : {}),
            },
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

function forbidden(user: Identity, what: string, p: Permission, reason?: string): NemuError {
  return new NemuError(
    ErrorCodes.FORBIDDEN,
    `${user.username} may not ${what}${reason ? ` (${reason})` : ''}; grant it with RBAC (docs/security.md lists the shipped roles, e.g. ${suggestRole(p)})`,
    { status: 403 },
  );
}

/** Throws NEMU_ERR_FORBIDDEN (403) naming the missing permission unless `user` holds it. */
export async function requirePermission(authorizer: Authorizer, user: Identity, p: Permission, namespace: string | undefined): Promise<void> {
  const d = await authorizer.decide(user, p, namespace);
  if (!d.allowed) throw forbidden(user, describePermission(p, namespace), p, d.reason);
}

/**
 * The permission on a stored object whose namespace `located` gave (null: no such object).
 * An unknown object is checked cluster-wide, so that 404 is answered only to whoever could
 * read it anywhere. A refusal names the namespace only to a caller who may `get` the resource
 * there (an operator who may read a mutation but not roll it back is told where it lives);
 * anyone else gets one answer for "not yours" and "does not exist".
 */
export async function requireOnObject(authorizer: Authorizer, user: Identity, p: Permission, located: string | undefined | null, what: string): Promise<void> {
  const namespace = located ?? undefined;
  const d = await authorizer.decide(user, p, namespace);
  if (d.allowed) return;
  if (namespace && (await authorizer.decide(user, { verb: 'get', resource: p.resource }, namespace)).allowed) {
    throw forbidden(user, describePermission(p, namespace), p, d.reason);
  }
  const res = p.subresource ? `${p.resource}/${p.subresource}` : p.resource;
  throw forbidden(user, `${p.verb} ${res}.${API_GROUP} on ${what}, or it does not exist`, p);
}

function suggestRole(p: Permission): string {
  if (p.resource === 'profiles') return 'ClusterRole nemutator-profiler';
  if (p.resource === 'secretrotations') return 'ClusterRole nemutator-secrets-rotator';
  if (p.verb === 'get' || p.verb === 'list') return 'ClusterRole nemutator-viewer';
  if (p.resource === 'dictionary' || p.resource === 'skiprules') return 'ClusterRole nemutator-dictionary-editor';
  return 'ClusterRole nemutator-operator';
}
