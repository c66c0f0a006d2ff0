// The review-style APIs (create-only, nothing stored) and TokenRequest:
// authentication.k8s.io TokenReview / SelfSubjectReview, authorization.k8s.io
// SubjectAccessReview / LocalSubjectAccessReview / SelfSubjectAccessReview, and
// serviceaccounts/<name>/token.
import type { BoundObjectLookup, TokenIssuer, UserInfo } from './auth.ts';
import { TokenRejected } from './auth.ts';
import { authorize, type NonResourceAttributes, type RbacObjects, type ResourceAttributes } from './rbac.ts';
import type { Registry } from './registry.ts';
import { badRequest, conflict, invalid, notFound } from './status.ts';

type Obj = Record<string, unknown>;

function spec(body: unknown): Obj {
  const s = (body as { spec?: unknown } | null)?.spec;
  return typeof s === 'object' && s !== null ? (s as Obj) : {};
}

function echo(body: unknown, apiVersion: string, kind: string): Obj {
  const b = (body ?? {}) as Obj;
  return { kind, apiVersion, metadata: { ...((b['metadata'] as Obj | undefined) ?? {}), creationTimestamp: null }, spec: b['spec'] ?? {} };
}

export async function tokenReview(body: unknown, issuer: TokenIssuer, lookup: BoundObjectLookup, adminToken: string): Promise<Obj> {
  const s = spec(body);
  const token = s['token'];
  const audiences = (s['audiences'] as string[] | undefined) ?? [];
  const out = echo(body, 'authentication.k8s.io/v1', 'TokenReview');
  if (typeof token !== 'string' || token === '') {
    throw invalid({ group: 'authentication.k8s.io', kind: 'TokenReview' }, '', [{ type: 'FieldValueRequired', field: 'spec.token', detail: '' }]);
  }
  if (token === adminToken) {
    // The static admin token is only valid for the API server's own audiences.
    const ok = audiences.length === 0 || audiences.some((a) => issuer.apiAudiences.includes(a));
    out['status'] = ok
      ? {
          authenticated: true,
          user: { username: 'kubernetes-admin', groups: ['system:masters', 'system:authenticated'] },
          audiences: audiences.length ? audiences.filter((a) => issuer.apiAudiences.includes(a)) : issuer.apiAudiences,
        }
      : { user: {}, error: '[invalid bearer token, token audiences is invalid for the target audiences]' };
    return out;
  }
  try {
    const { user, audiences: matched } = await issuer.authenticate(token, audiences, lookup);
    out['status'] = { authenticated: true, user: { ...user }, audiences: matched };
  } catch (err) {
    const reason = err instanceof TokenRejected ? err.message : String(err);
    out['status'] = { user: {}, error: `[invalid bearer token, ${reason}]` };
  }
  return out;
}

export function selfSubjectReview(body: unknown, user: UserInfo): Obj {
  const out = echo(body, 'authentication.k8s.io/v1', 'SelfSubjectReview');
  delete out['spec'];
  out['status'] = {
    userInfo: {
      username: user.username,
      ...(user.uid ? { uid: user.uid } : {}),
      groups: user.groups,
      ...(user.extra && Object.keys(user.extra).length ? { extra: user.extra } : {}),
    },
  };
  return out;
}

function decide(user: UserInfo, s: Obj, rbac: RbacObjects, forcedNamespace?: string): { allowed: boolean; reason?: string } {
  const ra = s['resourceAttributes'] as ResourceAttributes | undefined;
  const nra = s['nonResourceAttributes'] as NonResourceAttributes | undefined;
  if (!ra && !nra) {
    throw invalid({ group: 'authorization.k8s.io', kind: 'SubjectAccessReview' }, '', [
      {
        type: 'FieldValueInvalid',
        field: 'spec.resourceAttributes',
        value: null,
        detail: 'exactly one of nonResourceAttributes or resourceAttributes must be specified',
      },
    ]);
  }
  const resource = ra ? { ...ra, verb: ra.verb ?? '', ...(forcedNamespace !== undefined ? { namespace: forcedNamespace } : {}) } : undefined;
  const decision = authorize(user, resource ? { resource } : { nonResource: { path: nra?.path ?? '', verb: nra?.verb ?? '' } }, rbac);
  return { allowed: decision.allowed, ...(decision.reason ? { reason: decision.reason } : {}) };
}

export function subjectAccessReview(body: unknown, rbac: RbacObjects): Obj {
  const s = spec(body);
  if (!s['user'] && !(s['groups'] as unknown[] | undefined)?.length && !s['uid']) {
    throw invalid({ group: 'authorization.k8s.io', kind: 'SubjectAccessReview' }, '', [
      { type: 'FieldValueRequired', field: 'spec.user', detail: 'at least one of user or group must be specified' },
    ]);
  }
  const user: UserInfo = {
    username: String(s['user'] ?? ''),
    groups: (s['groups'] as string[] | undefined) ?? [],
    ...(s['uid'] ? { uid: String(s['uid']) } : {}),
  };
  const out = echo(body, 'authorization.k8s.io/v1', 'SubjectAccessReview');
  out['status'] = decide(user, s, rbac);
  return out;
}

export function localSubjectAccessReview(body: unknown, namespace: string, rbac: RbacObjects): Obj {
  const s = spec(body);
  const ra = s['resourceAttributes'] as ResourceAttributes | undefined;
  if (ra?.namespace && ra.namespace !== namespace) {
    throw badRequest(`spec.resourceAttributes.namespace must match metadata.namespace: "${ra.namespace}" != "${namespace}"`);
  }
  const user: UserInfo = { username: String(s['user'] ?? ''), groups: (s['groups'] as string[] | undefined) ?? [] };
  const out = echo(body, 'authorization.k8s.io/v1', 'LocalSubjectAccessReview');
  (out['metadata'] as Obj)['namespace'] = namespace;
  out['status'] = decide(user, s, rbac, namespace);
  return out;
}

export function selfSubjectAccessReview(body: unknown, user: UserInfo, rbac: RbacObjects): Obj {
  const out = echo(body, 'authorization.k8s.io/v1', 'SelfSubjectAccessReview');
  out['status'] = decide(user, spec(body), rbac);
  return out;
}

/** POST serviceaccounts/<name>/token. */
export async function tokenRequest(registry: Registry, issuer: TokenIssuer, namespace: string, saName: string, body: unknown): Promise<Obj> {
  const saR = registry.resource('', 'serviceaccounts');
  const sa = registry.get(saR, namespace, saName);
  const s = spec(body);
  const expirationSeconds = Number(s['expirationSeconds'] ?? 3600);
  const kind = { group: 'authentication.k8s.io', kind: 'TokenRequest' };
  if (!Number.isInteger(expirationSeconds) || expirationSeconds < 600) {
    throw invalid(kind, saName, [
      { type: 'FieldValueInvalid', field: 'spec.expirationSeconds', value: expirationSeconds, detail: 'may not specify a duration less than 10 minutes' },
    ]);
  }
  if (expirationSeconds > 2 ** 32) {
    throw invalid(kind, saName, [
      { type: 'FieldValueTooLong', field: 'spec.expirationSeconds', detail: 'may not specify a duration larger than 2^32 seconds' },
    ]);
  }
  const ref = s['boundObjectRef'] as { kind?: string; apiVersion?: string; name?: string; uid?: string } | undefined;
  let pod: { name: string; uid: string } | undefined;
  let node: { name: string; uid: string } | undefined;
  let secret: { name: string; uid: string } | undefined;
  if (ref) {
    const name = ref.name ?? '';
    switch (ref.kind) {
      case 'Pod': {
        const p = registry.tryGet(registry.resource('', 'pods'), namespace, name);
        if (!p) throw notFound(registry.resource('', 'pods'), name);
        if (ref.uid && ref.uid !== p.metadata.uid) throw conflictingUid('Pod', name, ref.uid, p.metadata.uid);
        pod = { name, uid: p.metadata.uid as string };
        const nodeName = (p['spec'] as { nodeName?: string } | undefined)?.nodeName;
        if (nodeName) {
          const n = registry.tryGet(registry.resource('', 'nodes'), undefined, nodeName);
          if (n) node = { name: nodeName, uid: n.metadata.uid as string };
        }
        break;
      }
      case 'Secret': {
        const sec = registry.tryGet(registry.resource('', 'secrets'), namespace, name);
        if (!sec) throw notFound(registry.resource('', 'secrets'), name);
        secret = { name, uid: sec.metadata.uid as string };
        break;
      }
      case 'Node': {
        const n = registry.tryGet(registry.resource('', 'nodes'), undefined, name);
        if (!n) throw notFound(registry.resource('', 'nodes'), name);
        node = { name, uid: n.metadata.uid as string };
        break;
      }
      default:
        throw invalid(kind, saName, [
          { type: 'FieldValueNotSupported', field: 'spec.boundObjectRef.kind', value: ref.kind, detail: 'supported values: "Pod", "Secret", "Node"' },
        ]);
    }
  }
  const audiences = (s['audiences'] as string[] | undefined) ?? [];
  const { token, expirationTimestamp } = await issuer.issue({
    namespace,
    serviceAccount: { name: saName, uid: sa.metadata.uid as string },
    audiences,
    expirationSeconds,
    ...(pod ? { pod } : {}),
    ...(node ? { node } : {}),
    ...(secret ? { secret } : {}),
  });
  const b = (body ?? {}) as Obj;
  return {
    kind: 'TokenRequest',
    apiVersion: 'authentication.k8s.io/v1',
    metadata: { ...((b['metadata'] as Obj | undefined) ?? {}), name: saName, namespace, creationTimestamp: null },
    spec: { audiences: audiences.length ? audiences : issuer.apiAudiences, expirationSeconds, boundObjectRef: ref ?? null },
    status: { token, expirationTimestamp },
  };
}

function conflictingUid(kind: string, name: string, want: string, _have: string | undefined): Error {
  return conflict(
    { group: '', plural: kind },
    name,
    `the UID in the bound object reference (${want}) does not match the UID in record. The object might have been deleted and then recreated`,
  );
}
