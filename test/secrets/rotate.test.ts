// Rotation fan-out and status through the real fleet hub: agents here are real FleetClients
// whose rotate/status handlers are stand-ins, so the test sees what the controller does with
// answers, failures and silence. Authorization: SubjectAccessReview against the kube double's
// RBAC (the ClusterRole nemutator-secrets-rotator from manifests/), and the CLI on top.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type CommandHandlers, commandRouter } from '#agent/app.js';
import type { FleetClient } from '#agent/fleet/client.js';
import { loadKubeConfig } from '#common/kube.js';
import { silentLogger } from '#common/log.js';
import { type RunningController, startController } from '#controller/app.js';
import { runCli } from '#controller/cli/main.js';
import { controllerFeatures } from '#controller/features.js';
import { SharedTokenAgentAuthenticator } from '#controller/fleet/auth.js';
import { TokenReviewer } from '#controller/kube/tokenreview.js';
import { SubjectAccessReviewAuthorizer } from '#controller/server/access.js';
import { TokenReviewAuthenticator } from '#controller/server/auth.js';
import type { ICommand } from '#proto/codec.js';

import { apiFetch, caFileOf, testControllerConfig } from '../harness/controller.ts';
import { standInAgent } from '../harness/fleet.ts';
import { type KubeDouble, startKubeDouble } from '../harness/kube/index.ts';
import { until } from '../harness/wait.ts';

const exec = promisify(execFile);
const AGENT_TOKEN = 'agent-token';
let kube: KubeDouble;
let c: RunningController;
let dir: string;
const agents: FleetClient[] = [];
const received: Array<{ node: string; command: ICommand }> = [];
let rotatorToken: string;
let outsiderToken: string;

function agent(nodeName: string, handlers: CommandHandlers): Promise<FleetClient> {
  const a = standInAgent(c, nodeName, AGENT_TOKEN, {
    onCommand: async (command) => {
      received.push({ node: nodeName, command });
      return commandRouter(handlers)(command);
    },
  });
  agents.push(a);
  return new Promise((resolve, reject) => {
    a.once('connected', () => resolve(a));
    a.once('refused', reject);
    a.start();
  });
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function api<T = Record<string, any>>(token: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
  const res = await apiFetch(c, c.apiUrl + path, {
    method,
    headers: { authorization: `Bearer ${token}` },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, body: (await res.json()) as T };
}

async function cli(token: string, ...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCli([...args, '--server', c.apiUrl.replace(/\/api\/v1$/, ''), '--ca-file', caFileOf(c), '--token', token], {
    out: (s) => (out += s + '\n'),
    err: (s) => (err += s + '\n'),
  });
  return { code, out, err };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'nemu-rotate-'));
  kube = await startKubeDouble({ controllers: false });
  const kc = loadKubeConfig(kube.kubeconfigPath)!;
  const config = testControllerConfig({ stateDir: dir, kubeconfig: kube.kubeconfigPath, secretsCommandTimeout: 800 });
  c = await startController(config, {
    log: silentLogger,
    mode: 'cluster',
    apiAuth: new TokenReviewAuthenticator(new TokenReviewer(kc)),
    authorizer: new SubjectAccessReviewAuthorizer(kc),
    agentAuth: new SharedTokenAgentAuthenticator(AGENT_TOKEN),
    ...controllerFeatures(),
  });
  // RBAC as shipped, and two callers: one bound to the rotator role, one not.
  await exec('kubectl', ['--kubeconfig', kube.kubeconfigPath, 'apply', '-f', 'manifests/rbac/user-roles.yaml']);
  await exec('kubectl', [
    '--kubeconfig',
    kube.kubeconfigPath,
    'create',
    'clusterrolebinding',
    'security-rotators',
    '--clusterrole=nemutator-secrets-rotator',
    '--serviceaccount=security:rotator',
  ]);
  rotatorToken = await kube.issueToken({ namespace: 'security', serviceAccount: 'rotator' });
  outsiderToken = await kube.issueToken({ namespace: 'shop', serviceAccount: 'default' });

  let rotated = 0;
  await agent('node-a', {
    rotate: async (cmd) => ({ rotate: { pathsChecked: 1, newVersions: cmd.rotate?.path === 'secret/app/db' ? 1 : 0, watchersNotified: 2 } }),
    secretStatus: async () => ({
      secretStatus: {
        holders: [
          {
            podUid: 'u-2',
            namespace: 'shop',
            pod: 'web-2',
            container: 'app',
            path: 'secret/app/db',
            version: 3 + rotated,
            ackedVersion: 3,
            ackedUnixMs: Date.UTC(2026, 0, 1),
          },
          {
            podUid: 'u-1',
            namespace: 'shop',
            pod: 'web-1',
            container: 'app',
            path: 'secret/app/db',
            version: 3,
            ackedVersion: 3,
            ackedUnixMs: Date.UTC(2026, 0, 1),
          },
        ],
      },
    }),
  });
  await agent('node-b', {
    rotate: async () => {
      rotated++;
      return { rotate: { pathsChecked: 2, newVersions: 1, watchersNotified: 1 } };
    },
    secretStatus: async () => ({
      secretStatus: { holders: [{ podUid: 'u-3', namespace: 'api', pod: 'api-0', container: 'srv', path: 'secret/app/db', version: 4, ackedVersion: 0 }] },
    }),
  });
  // fails with a reason, and one that never answers
  await agent('node-c', {
    rotate: async () => {
      throw Object.assign(new Error('vault at https://vault:8200 refused the connection; check the agent’s vaultAddr'), { code: 'NEMU_ERR_VAULT_UNREACHABLE' });
    },
    secretStatus: async () => ({ secretStatus: { holders: [] } }),
  });
  await agent('node-d', { rotate: () => new Promise(() => {}), secretStatus: () => new Promise(() => {}) });
}, 60_000);

afterAll(async () => {
  for (const a of agents) await a.stop();
  await c?.stop();
  await kube?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('POST /api/v1/secrets/rotate', () => {
  it('fans out to every connected agent and sums what they did, naming the nodes that failed or were silent', async () => {
    received.length = 0;
    const t0 = Date.now();
    const { status, body } = await api(rotatorToken, 'POST', '/secrets/rotate', { path: 'vault:secret/app/db#password' });
    expect(status).toBe(200);
    expect(Date.now() - t0).toBeLessThan(2000); // one deadline for all nodes, not one per node
    expect(body.path).toBe('secret/app/db');
    expect(
      received
        .filter((r) => r.command.rotate)
        .map((r) => [r.node, r.command.rotate!.path])
        .sort(),
    ).toEqual([
      ['node-a', 'secret/app/db'],
      ['node-b', 'secret/app/db'],
      ['node-c', 'secret/app/db'],
      ['node-d', 'secret/app/db'],
    ]);
    expect(body.totals).toEqual({ nodes: 4, answered: 2, failed: 2, pathsChecked: 3, newVersions: 2, watchersNotified: 3 });
    expect(body.nodes[2]).toMatchObject({
      node: 'node-c',
      ok: false,
      error: { code: 'NEMU_ERR_VAULT_UNREACHABLE', message: expect.stringContaining('refused') },
    });
    expect(body.nodes[3]).toMatchObject({ node: 'node-d', ok: false, error: { message: 'the agent on node-d did not answer within 800 ms' } });
  });

  it('is refused with 403 to a caller without create on secretrotations.nemutator.io, and nothing is sent', async () => {
    received.length = 0;
    const { status, body } = await api(outsiderToken, 'POST', '/secrets/rotate', { path: 'secret/app/db' });
    expect(status).toBe(403);
    expect(body.code).toBe('NEMU_ERR_FORBIDDEN');
    expect(body.message).toContain('system:serviceaccount:shop:default may not create secretrotations.nemutator.io cluster-wide');
    expect(body.message).toContain('nemutator-secrets-rotator');
    expect(received).toEqual([]);
  });

  it('refuses a missing or malformed path with 400 and the expected form', async () => {
    for (const bad of [{}, { path: '' }, { path: 'db' }, { path: 'secret/../etc' }, { path: 7 }]) {
      const { status, body } = await api(rotatorToken, 'POST', '/secrets/rotate', bad);
      expect(status).toBe(400);
      expect(body.message).toMatch(/secret\/app\/db/);
    }
    expect((await api(rotatorToken, 'POST', '/secrets/rotate', undefined)).status).toBe(400);
  });
});

describe('GET /api/v1/secrets/status', () => {
  it('lists which pod and container holds which version, and which it acknowledged', async () => {
    const { status, body } = await api(rotatorToken, 'GET', '/secrets/status?path=secret/app/db');
    expect(status).toBe(200);
    expect(body.holders.map((h: { pod: string }) => h.pod)).toEqual(['api-0', 'web-1', 'web-2']);
    expect(body.holders[0]).toEqual({
      node: 'node-b',
      namespace: 'api',
      pod: 'api-0',
      podUid: 'u-3',
      container: 'srv',
      path: 'secret/app/db',
      version: 4,
      ackedVersion: 0,
      ackedAt: null,
      current: false,
    });
    expect(body.holders[1]).toMatchObject({ node: 'node-a', version: 3, ackedVersion: 3, ackedAt: '2026-01-01T00:00:00.000Z', current: true });
    expect(body.nodes).toEqual([
      { node: 'node-a', ok: true, holders: 2 },
      { node: 'node-b', ok: true, holders: 1 },
      { node: 'node-c', ok: true, holders: 0 },
      { node: 'node-d', ok: false, holders: 0, error: expect.objectContaining({ message: expect.stringContaining('did not answer') }) },
    ]);
    const statusCommands = received.filter((r) => r.command.secretStatus);
    expect(statusCommands.every((r) => r.command.secretStatus!.path === 'secret/app/db')).toBe(true);
  });

  it('shows a caller bound in one namespace only that namespace’s holders, and nothing cluster-wide', async () => {
    kube.put({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: 'shop-secret-status', namespace: 'shop' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'nemutator-secrets-rotator' },
      subjects: [{ kind: 'ServiceAccount', name: 'default', namespace: 'shop' }],
    });
    const everywhere = await api(outsiderToken, 'GET', '/secrets/status?path=secret/app/db');
    expect(everywhere.status).toBe(403);
    expect(everywhere.body.message).toContain('list secretstatus.nemutator.io cluster-wide');
    const shop = await until('the RoleBinding to take effect', async () => {
      const r = await api(outsiderToken, 'GET', '/secrets/status?path=secret/app/db&namespace=shop');
      return r.status === 200 ? r.body : undefined;
    });
    expect(shop.holders.map((h: { namespace: string; pod: string }) => `${h.namespace}/${h.pod}`)).toEqual(['shop/web-1', 'shop/web-2']);
    expect((await api(outsiderToken, 'GET', '/secrets/status?path=secret/app/db&namespace=api')).status).toBe(403);
  });
});

describe('nemutator secrets', () => {
  it('rotate prints the summary and exits 1 naming the nodes that did not rotate', async () => {
    const r = await cli(rotatorToken, 'secrets', 'rotate', 'secret/app/db');
    expect(r.code).toBe(1);
    expect(r.out).toContain('Rotation of secret/app/db: 2/4 node(s) answered, 2 new version(s), 3 watcher(s) notified.');
    expect(r.err).toMatch(/2 node\(s\) did not rotate:\n {2}node-c: NEMU_ERR_VAULT_UNREACHABLE .*\n {2}node-d: /);
    const denied = await cli(outsiderToken, 'secrets', 'rotate', 'secret/app/db');
    expect(denied.code).toBe(1);
    expect(denied.err).toContain('NEMU_ERR_FORBIDDEN');
  });

  it('status prints a table of holders (and JSON with -o json)', async () => {
    const r = await cli(rotatorToken, 'secrets', 'status', 'secret/app/db');
    expect(r.code).toBe(0);
    const lines = r.out.trim().split('\n');
    expect(lines[0]).toMatch(/^NAMESPACE\s+POD\s+CONTAINER\s+PATH\s+VERSION\s+ACKED\s+ACKED AT\s+NODE$/);
    expect(lines[1]).toMatch(/^api\s+api-0\s+srv\s+secret\/app\/db\s+4\s+-\s+-\s+node-b$/);
    expect(r.err).toContain('node-d');
    const json = JSON.parse((await cli(rotatorToken, 'secrets', 'status', '-o', 'json')).out);
    expect(json.holders).toHaveLength(3);
    expect((await cli(rotatorToken, 'secrets')).code).toBe(2);
    expect((await cli(rotatorToken, 'secrets', 'rotate')).code).toBe(1);
  });
});
