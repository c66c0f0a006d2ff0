// In a cluster the controller verifies agents and API callers with TokenReview; here the
// API server is the double, which signs service-account tokens like kube-apiserver.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadKubeConfig } from '#common/kube.js';
import { silentLogger } from '#common/log.js';
import { type RunningController, startController } from '#controller/app.js';
import { TokenReviewAgentAuthenticator } from '#controller/fleet/auth.js';
import { CloseCodes } from '#controller/fleet/hub.js';
import { TokenReviewer } from '#controller/kube/tokenreview.js';
import { SubjectAccessReviewAuthorizer } from '#controller/server/access.js';
import { TokenReviewAuthenticator } from '#controller/server/auth.js';

import { apiFetch, testControllerConfig } from '../harness/controller.ts';
import { standInAgent } from '../harness/fleet.ts';
import { type KubeDouble, startKubeDouble } from '../harness/kube/index.ts';
import { until } from '../harness/wait.ts';

let kube: KubeDouble;
let c: RunningController;

beforeAll(async () => {
  kube = await startKubeDouble({ nodes: ['node-1', 'node-2'], controllers: false });
  const kc = loadKubeConfig(kube.kubeconfigPath)!;
  const config = testControllerConfig({ stateDir: mkdtempSync(join(tmpdir(), 'nemu-cauth-')) });
  c = await startController(config, {
    log: silentLogger,
    mode: 'cluster',
    apiAuth: new TokenReviewAuthenticator(new TokenReviewer(kc)),
    authorizer: new SubjectAccessReviewAuthorizer(kc),
    agentAuth: new TokenReviewAgentAuthenticator(new TokenReviewer(kc, { audiences: ['nemutator'] }), {
      namespace: 'nemutator',
      serviceAccount: 'nemutator-agent',
    }),
  });
});
afterAll(async () => {
  await c.stop();
  await kube.stop();
});

function connect(token: string, nodeName: string): Promise<{ ok: boolean; message?: string }> {
  const a = standInAgent(c, nodeName, token);
  return new Promise((resolve) => {
    a.once('connected', () => void a.stop().then(() => resolve({ ok: true })));
    a.once('refused', (e: { message?: string }) => void a.stop().then(() => resolve({ ok: false, message: e.message })));
    a.start();
  });
}

/** The agent pod on `node` (as the DaemonSet would have it) and a token bound to it, as the kubelet projects. */
async function agentToken(node: string, extra: Partial<Parameters<KubeDouble['issueToken']>[0]> = {}): Promise<string> {
  const name = `agent-${node}`;
  const pod =
    kube.get('pods', 'nemutator', name) ??
    kube.put({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: 'nemutator' },
      spec: { nodeName: node, serviceAccountName: 'nemutator-agent', containers: [{ name: 'agent', image: 'agent' }] },
    });
  const nodeObj = kube.get('nodes', undefined, node)!;
  return kube.issueToken({
    namespace: 'nemutator',
    serviceAccount: 'nemutator-agent',
    audiences: ['nemutator'],
    pod: { name, uid: pod.metadata!.uid as string },
    node: { name: node, uid: nodeObj.metadata!.uid as string },
    ...extra,
  });
}

describe('agents in a cluster', () => {
  it('accepts the agent service account bound to the node it claims', async () => {
    expect(await connect(await agentToken('node-1'), 'node-1')).toEqual({ ok: true });
    expect(c.registry.get('node-1')?.agentVersion).toBe('test');
  });

  it('refuses another node’s token, another service account, the wrong audience, an expired or tampered token', async () => {
    const other = await connect(await agentToken('node-2'), 'node-1');
    expect(other.ok).toBe(false);
    expect(other.message).toMatch(/bound to node node-2, but the agent claims node node-1/);

    const impostor = kube.put({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'impostor', namespace: 'default' },
      spec: { nodeName: 'node-1', containers: [{ name: 'x', image: 'x' }] },
    });
    const node1 = kube.get('nodes', undefined, 'node-1')!;
    const wrongSa = await connect(
      await kube.issueToken({
        namespace: 'default',
        serviceAccount: 'default',
        audiences: ['nemutator'],
        pod: { name: 'impostor', uid: impostor.metadata!.uid as string },
        node: { name: 'node-1', uid: node1.metadata!.uid as string },
      }),
      'node-1',
    );
    expect(wrongSa.message).toMatch(/belongs to system:serviceaccount:default:default, not the agent service account/);

    const wrongAudience = await connect(await agentToken('node-1', { audiences: ['vault'] }), 'node-1');
    expect(wrongAudience.message).toMatch(/token refused by the API server/);

    const expired = await connect(await agentToken('node-1', { expirationSeconds: -60 }), 'node-1');
    expect(expired.message).toMatch(/token refused/);

    const t = await agentToken('node-1');
    const tampered = t.slice(0, -4) + (t.endsWith('AAAA') ? 'BBBB' : 'AAAA');
    expect((await connect(tampered, 'node-1')).message).toMatch(/token refused/);

    const unbound = await connect(await kube.issueToken({ namespace: 'nemutator', serviceAccount: 'nemutator-agent', audiences: ['nemutator'] }), 'node-1');
    expect(unbound.message).toMatch(/not bound to a pod on a node/);
  });

  it('refuses a node name whose reason overflows a close frame, and keeps serving', async () => {
    // A WebSocket close reason holds at most 123 bytes: 60 two-byte characters fit in 120
    // characters but not in 123 bytes. The refusal must not throw inside the hub.
    const claimed = 'ö'.repeat(60);
    const a = standInAgent(c, claimed, await agentToken('node-2'));
    const refused = new Promise<{ message?: string }>((r) => a.once('refused', r));
    const closed = new Promise<number>((r) => a.once('disconnected', r));
    a.start();
    expect((await refused).message).toContain(`bound to node node-2, but the agent claims node ${claimed}`);
    expect(await closed).toBe(CloseCodes.AUTH_FAILED);
    await a.stop();
    expect(await connect(await agentToken('node-1'), 'node-1')).toEqual({ ok: true });
  });
});

describe('REST API callers in a cluster', () => {
  it('authenticates a Kubernetes token, then asks RBAC; anything else is refused', async () => {
    const token = await kube.issueToken({ namespace: 'default', serviceAccount: 'dev' });
    const nodes = () => apiFetch(c, `${c.apiUrl}/nodes`, { headers: { authorization: `Bearer ${token}` } });
    const refused = await nodes();
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as { code: string }).code).toBe('NEMU_ERR_FORBIDDEN');
    kube.put({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: 'node-reader' },
      rules: [{ apiGroups: ['nemutator.io'], resources: ['nodes'], verbs: ['list'] }],
    });
    kube.put({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: 'dev-reads-nodes' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'node-reader' },
      subjects: [{ kind: 'ServiceAccount', name: 'dev', namespace: 'default' }],
    });
    // A refusal is remembered for 2 s at most: the new binding is seen once it expires.
    await until('the binding to take effect', async () => (await nodes()).status === 200, 10_000);
    const bad = await apiFetch(c, `${c.apiUrl}/nodes`, { headers: { authorization: 'Bearer not-a-token' } });
    expect(bad.status).toBe(401);
    expect(((await bad.json()) as { code: string }).code).toBe('NEMU_ERR_UNAUTHORIZED');
  });
});
