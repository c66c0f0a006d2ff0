// Identity in the Kubernetes double: TokenRequest issues service-account JWTs with the real
// server's claims, verifiable through OIDC discovery; TokenReview accepts them and rejects
// tampered, expired, wrong-audience and orphaned ones; the tokens authenticate API calls
// that RBAC objects authorize; SubjectAccessReview answers from the same RBAC objects.
import { AuthenticationV1Api, AuthorizationV1Api, CoreV1Api, KubeConfig, RbacAuthorizationV1Api, type V1TokenReview } from '@kubernetes/client-node';
import { createLocalJWKSet, decodeJwt, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type KubeDouble, startKubeDouble } from '../harness/kube/index.ts';

let kube: KubeDouble;
let core: CoreV1Api;
let authn: AuthenticationV1Api;
let authz: AuthorizationV1Api;
let rbac: RbacAuthorizationV1Api;
const NS = 'id';

/** Role pod-reader bound to the agent's service account (each test that needs it asks, so it runs alone). */
async function agentReadsPods(): Promise<void> {
  const exists = (e: unknown) => {
    if ((e as { code?: number }).code !== 409) throw e;
  };
  await rbac
    .createNamespacedRole({
      namespace: NS,
      body: { metadata: { name: 'pod-reader' }, rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] }] },
    })
    .catch(exists);
  await rbac
    .createNamespacedRoleBinding({
      namespace: NS,
      body: {
        metadata: { name: 'agent-reads' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'pod-reader' },
        subjects: [{ kind: 'ServiceAccount', name: 'agent', namespace: NS }],
      },
    })
    .catch(exists);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function raw(path: string, token?: string, init: { method?: string; body?: unknown } = {}): Promise<{ status: number; body: any }> {
  const res = await fetch(`${kube.httpUrl}${path}`, {
    method: init.method ?? 'GET',
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), 'content-type': 'application/json' },
    ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text.startsWith('{') ? JSON.parse(text) : text };
}

const review = (token: string, audiences?: string[]): Promise<V1TokenReview> =>
  authn.createTokenReview({ body: { spec: { token, ...(audiences ? { audiences } : {}) } } });

beforeAll(async () => {
  kube = await startKubeDouble({ http: true });
  const kc = new KubeConfig();
  kc.loadFromFile(kube.kubeconfigPath);
  core = kc.makeApiClient(CoreV1Api);
  authn = kc.makeApiClient(AuthenticationV1Api);
  authz = kc.makeApiClient(AuthorizationV1Api);
  rbac = kc.makeApiClient(RbacAuthorizationV1Api);
  await core.createNamespace({ body: { metadata: { name: NS } } });
  await core.createNamespacedServiceAccount({ namespace: NS, body: { metadata: { name: 'agent' } } });
  await core.createNamespacedPod({
    namespace: NS,
    body: { metadata: { name: 'app' }, spec: { serviceAccountName: 'agent', containers: [{ name: 'c', image: 'busybox:1.36' }] } },
  });
  await kube.settle(); // the scheduler stand-in binds the pod to node-1
});
afterAll(async () => {
  await kube?.stop();
});

describe('service-account tokens', () => {
  it('TokenRequest bound to a pod carries the real claims and verifies against the published JWKS', async () => {
    const p = await core.readNamespacedPod({ namespace: NS, name: 'app' });
    const node = await core.readNode({ name: 'node-1' });
    const sa = await core.readNamespacedServiceAccount({ namespace: NS, name: 'agent' });
    const tr = await core.createNamespacedServiceAccountToken({
      namespace: NS,
      name: 'agent',
      body: { spec: { audiences: ['vault'], expirationSeconds: 600, boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: 'app', uid: p.metadata!.uid! } } },
    });
    const token = tr.status!.token;
    const claims = decodeJwt(token);
    expect(claims).toMatchObject({
      iss: kube.issuer,
      aud: ['vault'],
      sub: `system:serviceaccount:${NS}:agent`,
      'kubernetes.io': {
        namespace: NS,
        serviceaccount: { name: 'agent', uid: sa.metadata!.uid },
        pod: { name: 'app', uid: p.metadata!.uid },
        node: { name: 'node-1', uid: node.metadata!.uid },
      },
    });
    expect((claims.exp as number) - (claims.iat as number)).toBe(600);
    expect(new Date(tr.status!.expirationTimestamp).getTime()).toBe((claims.exp as number) * 1000);

    // OIDC discovery as a relying party (Vault) does it: issuer document, then JWKS.
    const discovery = await raw('/.well-known/openid-configuration', kube.adminToken);
    expect(discovery.body).toMatchObject({ issuer: kube.issuer, jwks_uri: `${kube.url}/openid/v1/jwks`, id_token_signing_alg_values_supported: ['RS256'] });
    // A token for another audience is no credential for the API server itself.
    expect((await raw('/openid/v1/jwks', token)).status).toBe(401);
    const jwks = await raw('/openid/v1/jwks', await kube.issueToken({ namespace: NS, serviceAccount: 'agent' }));
    expect(jwks.status).toBe(200);
    expect(jwks.body).toEqual(kube.jwks);
    const verified = await jwtVerify(token, createLocalJWKSet(jwks.body), { issuer: kube.issuer, audience: 'vault' });
    expect(verified.protectedHeader).toMatchObject({ alg: 'RS256', kid: kube.jwks.keys[0]!.kid });
  });

  it('TokenRequest refuses durations under ten minutes and unknown service accounts', async () => {
    await expect(
      core.createNamespacedServiceAccountToken({ namespace: NS, name: 'agent', body: { spec: { audiences: [], expirationSeconds: 60 } } }),
    ).rejects.toMatchObject({
      code: 422,
      body: expect.stringContaining('may not specify a duration less than 10 minutes'),
    });
    await expect(core.createNamespacedServiceAccountToken({ namespace: NS, name: 'ghost', body: { spec: { audiences: [] } } })).rejects.toMatchObject({
      code: 404,
    });
  });

  it('TokenReview accepts an issued token and reports the user, groups and pod binding', async () => {
    const p = await core.readNamespacedPod({ namespace: NS, name: 'app' });
    const token = await kube.issueToken({ namespace: NS, serviceAccount: 'agent', audiences: ['nemutator'], pod: { name: 'app', uid: p.metadata!.uid! } });
    const r = await review(token, ['nemutator']);
    expect(r.status).toMatchObject({
      authenticated: true,
      audiences: ['nemutator'],
      user: {
        username: `system:serviceaccount:${NS}:agent`,
        groups: ['system:serviceaccounts', `system:serviceaccounts:${NS}`, 'system:authenticated'],
        extra: {
          'authentication.kubernetes.io/pod-name': ['app'],
          'authentication.kubernetes.io/pod-uid': [p.metadata!.uid!],
          'authentication.kubernetes.io/node-name': ['node-1'],
        },
      },
    });
  });

  it('TokenReview rejects tampered, expired, wrong-audience and orphaned tokens', async () => {
    const good = await kube.issueToken({ namespace: NS, serviceAccount: 'agent', audiences: ['nemutator'] });
    const [h, payload, sig] = good.split('.') as [string, string, string];
    const forged = Buffer.from(JSON.stringify({ ...decodeJwt(good), sub: `system:serviceaccount:${NS}:admin` })).toString('base64url');
    const flipped = sig.slice(0, -2) + (sig.at(-2) === 'A' ? 'B' : 'A') + sig.at(-1);
    const cases: [string, string, string[] | undefined, RegExp][] = [
      ['forged payload', `${h}.${forged}.${sig}`, ['nemutator'], /error in cryptographic primitive/],
      ['flipped signature', `${h}.${payload}.${flipped}`, ['nemutator'], /error in cryptographic primitive/],
      [
        'expired',
        await kube.issueToken({ namespace: NS, serviceAccount: 'agent', audiences: ['nemutator'], expirationSeconds: -10 }),
        ['nemutator'],
        /service account token has expired/,
      ],
      ['other audience', good, ['vault'], /audiences .* is invalid for the target audiences/],
      ['not a JWT', 'not-a-token', ['nemutator'], /invalid bearer token/],
    ];
    for (const [what, token, audiences, why] of cases) {
      const r = await review(token, audiences);
      expect(r.status?.authenticated, what).toBeFalsy();
      expect(r.status?.error, what).toMatch(why);
    }
    // A token bound to a pod dies with the pod; one for a deleted service account too.
    await core.createNamespacedPod({
      namespace: NS,
      body: { metadata: { name: 'short-lived' }, spec: { serviceAccountName: 'agent', containers: [{ name: 'c', image: 'busybox:1.36' }] } },
    });
    const sl = await core.readNamespacedPod({ namespace: NS, name: 'short-lived' });
    const bound = await kube.issueToken({
      namespace: NS,
      serviceAccount: 'agent',
      audiences: ['nemutator'],
      pod: { name: 'short-lived', uid: sl.metadata!.uid! },
    });
    expect((await review(bound, ['nemutator'])).status?.authenticated).toBe(true);
    await core.deleteNamespacedPod({ namespace: NS, name: 'short-lived' });
    expect((await review(bound, ['nemutator'])).status?.error).toMatch(/pods "short-lived" not found/);
    const temp = await kube.issueToken({ namespace: NS, serviceAccount: 'temp', audiences: ['nemutator'] });
    await core.deleteNamespacedServiceAccount({ namespace: NS, name: 'temp' });
    expect((await review(temp, ['nemutator'])).status?.error).toMatch(/serviceaccounts "temp" not found/);
  });
});

describe('authorization from RBAC objects', () => {
  it('a service-account token is authenticated by the API and authorized only as its roles allow', async () => {
    const token = await kube.issueToken({ namespace: NS, serviceAccount: 'agent' });
    const denied = await raw(`/api/v1/namespaces/${NS}/pods`, token);
    expect(denied.status).toBe(403);
    expect(denied.body).toMatchObject({
      kind: 'Status',
      apiVersion: 'v1',
      status: 'Failure',
      reason: 'Forbidden',
      code: 403,
      message: `pods is forbidden: User "system:serviceaccount:${NS}:agent" cannot list resource "pods" in API group "" in the namespace "${NS}"`,
      details: { kind: 'pods' },
    });
    expect((await raw('/api/v1/pods', 'forged.token.value')).status).toBe(401);
    expect((await raw('/api', token)).status).toBe(200); // discovery is open to authenticated users

    await agentReadsPods();
    expect((await raw(`/api/v1/namespaces/${NS}/pods`, token)).status).toBe(200);
    expect((await raw('/api/v1/namespaces/default/pods', token)).status).toBe(403);
    expect((await raw(`/api/v1/namespaces/${NS}/pods/app`, token, { method: 'DELETE' })).status).toBe(403);
  });

  it('SubjectAccessReview follows Roles, ClusterRoles, resourceNames, subresources and groups', async () => {
    await agentReadsPods();
    await rbac.createClusterRole({
      body: {
        metadata: { name: 'evictor' },
        rules: [
          { apiGroups: [''], resources: ['pods/eviction'], verbs: ['create'] },
          { apiGroups: ['coordination.k8s.io'], resources: ['leases'], resourceNames: ['nemutator-leader'], verbs: ['get', 'update'] },
          { nonResourceURLs: ['/metrics'], verbs: ['get'] },
        ],
      },
    });
    await rbac.createClusterRoleBinding({
      body: {
        metadata: { name: 'controllers-evict' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'evictor' },
        subjects: [{ kind: 'Group', name: 'example:controllers', apiGroup: 'rbac.authorization.k8s.io' }],
      },
    });
    const sar = async (spec: Record<string, unknown>): Promise<boolean> => (await authz.createSubjectAccessReview({ body: { spec } })).status!.allowed;
    const agent = { user: `system:serviceaccount:${NS}:agent`, groups: ['system:serviceaccounts', `system:serviceaccounts:${NS}`, 'system:authenticated'] };
    expect(await sar({ ...agent, resourceAttributes: { namespace: NS, verb: 'list', resource: 'pods' } })).toBe(true);
    expect(await sar({ ...agent, resourceAttributes: { namespace: NS, verb: 'delete', resource: 'pods' } })).toBe(false);
    expect(await sar({ ...agent, resourceAttributes: { namespace: 'default', verb: 'list', resource: 'pods' } })).toBe(false);
    expect(await sar({ ...agent, resourceAttributes: { namespace: NS, verb: 'get', resource: 'pods', subresource: 'log' } })).toBe(false);
    const ctl = { user: 'someone', groups: ['example:controllers'] };
    expect(await sar({ ...ctl, resourceAttributes: { namespace: NS, verb: 'create', resource: 'pods', subresource: 'eviction' } })).toBe(true);
    expect(await sar({ ...ctl, resourceAttributes: { namespace: NS, verb: 'create', resource: 'pods' } })).toBe(false);
    expect(
      await sar({ ...ctl, resourceAttributes: { namespace: NS, verb: 'update', group: 'coordination.k8s.io', resource: 'leases', name: 'nemutator-leader' } }),
    ).toBe(true);
    expect(await sar({ ...ctl, resourceAttributes: { namespace: NS, verb: 'update', group: 'coordination.k8s.io', resource: 'leases', name: 'other' } })).toBe(
      false,
    );
    expect(await sar({ ...ctl, nonResourceAttributes: { path: '/metrics', verb: 'get' } })).toBe(true);
    expect(await sar({ user: 'admin', groups: ['system:masters'], resourceAttributes: { verb: 'delete', resource: 'nodes' } })).toBe(true);
    const allowed = await authz.createSubjectAccessReview({
      body: { spec: { ...ctl, resourceAttributes: { namespace: NS, verb: 'create', resource: 'pods', subresource: 'eviction' } } },
    });
    expect(allowed.status?.reason).toBe('RBAC: allowed by ClusterRoleBinding "controllers-evict" of ClusterRole "evictor" to Group "example:controllers"');
    // Removing the binding removes the permission at once.
    await rbac.deleteClusterRoleBinding({ name: 'controllers-evict' });
    expect(await sar({ ...ctl, resourceAttributes: { namespace: NS, verb: 'create', resource: 'pods', subresource: 'eviction' } })).toBe(false);
  });

  it('SelfSubjectAccessReview and SelfSubjectReview answer for the caller', async () => {
    await agentReadsPods();
    const token = await kube.issueToken({ namespace: NS, serviceAccount: 'agent' });
    const self = await raw('/apis/authorization.k8s.io/v1/selfsubjectaccessreviews', token, {
      method: 'POST',
      body: { spec: { resourceAttributes: { namespace: NS, verb: 'watch', resource: 'pods' } } },
    });
    expect(self.status).toBe(201);
    expect(self.body.status.allowed).toBe(true);
    const who = await raw('/apis/authentication.k8s.io/v1/selfsubjectreviews', token, { method: 'POST', body: {} });
    expect(who.body.status.userInfo.username).toBe(`system:serviceaccount:${NS}:agent`);
  });
});
