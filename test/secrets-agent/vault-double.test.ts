// The Vault double is checked with the real client the agent uses (node-vault): login with a
// node-vault 0.12 needs mount_point on kubernetesLogin: its default (kubernetesPath) is not rendered into the path.
// pod's service-account token, KV v2 reads and metadata, token lookup/renew/revoke, denials.
import nodeVault from 'node-vault';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type KubeDouble, startKubeDouble } from '../harness/kube/index.ts';
import { startVaultDouble, type VaultDouble } from '../harness/vault/index.ts';

let kube: KubeDouble;
let vault: VaultDouble;

beforeAll(async () => {
  kube = await startKubeDouble({ controllers: false });
  vault = await startVaultDouble({
    jwks: kube.jwks,
    issuer: kube.issuer,
    roles: {
      app: {
        boundServiceAccountNames: ['app'],
        boundServiceAccountNamespaces: ['shop'],
        audience: 'vault',
        readPaths: ['secret/data/app/*', 'secret/metadata/app/*'],
        ttlSeconds: 60,
      },
    },
  });
  vault.put('secret/app/db', { password: 'v1-pass', user: 'app' });
});
afterAll(async () => {
  await vault?.stop();
  await kube?.stop();
});

const podToken = (o: { namespace?: string; serviceAccount?: string; audiences?: string[]; expirationSeconds?: number } = {}) =>
  kube.issueToken({
    namespace: o.namespace ?? 'shop',
    serviceAccount: o.serviceAccount ?? 'app',
    audiences: o.audiences ?? ['vault'],
    pod: { name: 'web-1', uid: '0d3c1f0e-1111-2222-3333-444455556666' },
    expirationSeconds: o.expirationSeconds ?? 600,
  });

describe('Vault double with node-vault', () => {
  it('answers sys/health', async () => {
    const health = await nodeVault({ endpoint: vault.addr }).health();
    expect(health).toMatchObject({ initialized: true, sealed: false, standby: false });
  });

  it('logs in with kubernetes auth, reads KV v2 data and metadata, renews and revokes the token', async () => {
    const client = nodeVault({ endpoint: vault.addr });
    const login = await client.kubernetesLogin({ mount_point: 'kubernetes', role: 'app', jwt: await podToken() });
    expect(login.auth).toMatchObject({ renewable: true, lease_duration: 60, metadata: { service_account_name: 'app', service_account_namespace: 'shop' } });
    expect(client.token).toBe(login.auth.client_token);

    const data = await client.read('secret/data/app/db');
    expect(data.data.metadata.version).toBe(1);
    expect(data.data.data.user).toBe('app');

    vault.put('secret/app/db', { password: 'v2-pass', user: 'app' });
    const meta = await client.read('secret/metadata/app/db');
    expect(meta.data.current_version).toBe(2);
    expect(Object.keys(meta.data.versions)).toEqual(['1', '2']);
    const old = await client.read('secret/data/app/db?version=1');
    expect(old.data.metadata.version).toBe(1);

    const self = await client.tokenLookupSelf();
    expect(self.data.ttl).toBeGreaterThan(0);
    const renewed = await client.tokenRenewSelf({ increment: 120 });
    expect(renewed.auth.lease_duration).toBe(120);
    await client.tokenRevokeSelf();
    await expect(client.read('secret/data/app/db')).rejects.toMatchObject({ response: { statusCode: 403 } });
  });

  it('refuses wrong service accounts, namespaces, audiences, expired tokens and paths outside the role', async () => {
    const c = () => nodeVault({ endpoint: vault.addr });
    await expect(c().kubernetesLogin({ mount_point: 'kubernetes', role: 'app', jwt: await podToken({ serviceAccount: 'other' }) })).rejects.toMatchObject({
      response: { statusCode: 403 },
    });
    await expect(c().kubernetesLogin({ mount_point: 'kubernetes', role: 'app', jwt: await podToken({ namespace: 'other' }) })).rejects.toMatchObject({
      response: { statusCode: 403 },
    });
    await expect(c().kubernetesLogin({ mount_point: 'kubernetes', role: 'app', jwt: await podToken({ audiences: ['nemutator'] }) })).rejects.toMatchObject({
      response: { statusCode: 403 },
    });
    await expect(c().kubernetesLogin({ mount_point: 'kubernetes', role: 'app', jwt: await podToken({ expirationSeconds: -10 }) })).rejects.toMatchObject({
      response: { statusCode: 403 },
    });
    await expect(c().kubernetesLogin({ mount_point: 'kubernetes', role: 'nope', jwt: await podToken() })).rejects.toMatchObject({
      response: { statusCode: 400 },
    });
    const ok = c();
    await ok.kubernetesLogin({ mount_point: 'kubernetes', role: 'app', jwt: await podToken() });
    vault.put('secret/other/x', { k: 'v' });
    await expect(ok.read('secret/data/other/x')).rejects.toMatchObject({ response: { statusCode: 403 } });
    await expect(ok.read('secret/data/app/missing')).rejects.toMatchObject({ response: { statusCode: 404 } });
  });

  it('accepts writes with the root token, and stops and resumes on the same address', async () => {
    const root = nodeVault({ endpoint: vault.addr, token: vault.rootToken });
    const w = await root.write('secret/data/app/api', { data: { key: 'k1' } });
    expect(w.data.version).toBe(1);
    await vault.pause();
    await expect(root.read('secret/data/app/api')).rejects.toThrow();
    await vault.start();
    expect((await root.read('secret/data/app/api')).data.metadata.version).toBe(1);
  });
});
