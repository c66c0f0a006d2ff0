// Certificates in a cluster: replicas share one CA through a Secret, the leader (Lease)
// keeps caBundle and the agents' CA ConfigMap current and renews before expiry, and every
// replica swaps the new certificate in without a restart. Also: a mounted certificate is
// reloaded when its files change.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { loadKubeConfig } from '#common/kube.js';
import { silentLogger } from '#common/log.js';
import { type RunningController, servingIdentity, startController } from '#controller/app.js';
import { createCa, issueServingCert } from '#controller/certs/authority.js';
import { ClusterTlsSource, MountedTlsSource } from '#controller/certs/sources.js';
import { type ControllerConfig } from '#controller/config.js';
import { SharedTokenAgentAuthenticator } from '#controller/fleet/auth.js';
import { LeaderElector } from '#controller/kube/leader.js';
import { localAuthorizer } from '#controller/server/access.js';
import { StaticTokenAuthenticator } from '#controller/server/auth.js';

import { testControllerConfig } from '../harness/controller.ts';
import { type KubeDouble, startKubeDouble } from '../harness/kube/index.ts';
import { until } from '../harness/wait.ts';

let kube: KubeDouble;
beforeAll(async () => {
  kube = await startKubeDouble({ controllers: false });
  kube.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'nemutator' } });
  kube.put({
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: { name: 'nemutator' },
    webhooks: ['pods', 'deployments'].map((w) => ({
      name: `${w}.nemutator.io`,
      admissionReviewVersions: ['v1'],
      sideEffects: 'NoneOnDryRun',
      failurePolicy: 'Ignore',
      clientConfig: { service: { namespace: 'nemutator', name: 'nemutator-controller', path: '/mutate', port: 443 } },
      rules: [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'] }],
    })),
  });
});
afterAll(() => kube.stop());

function config(): ControllerConfig {
  return testControllerConfig({ stateDir: mkdtempSync(join(tmpdir(), 'nemu-ctls-')) });
}

/** The certificate a client sees on the webhook port. */
function servedCert(c: RunningController, ca: string): Promise<{ fingerprint: string; serial: string }> {
  const u = new URL(c.webhookUrl);
  return new Promise((resolve, reject) => {
    const s = connect({ host: u.hostname, port: Number(u.port), ca, servername: 'localhost' }, () => {
      const cert = s.getPeerCertificate();
      s.end();
      resolve({ fingerprint: cert.fingerprint256, serial: cert.serialNumber });
    });
    s.on('error', reject);
  });
}

describe('certificates in a cluster', () => {
  it('two replicas share one CA; the leader publishes caBundle and the CA ConfigMap, renews, and both swap without restart', async () => {
    const kc = loadKubeConfig(kube.kubeconfigPath)!;
    const replicas = await Promise.all(
      ['replica-a', 'replica-b'].map(async (identity) => {
        const cfg = config();
        const leader = new LeaderElector(kc, {
          namespace: 'nemutator',
          name: 'nemutator-controller',
          identity,
          leaseDurationMs: 1500,
          renewEveryMs: 300,
          log: silentLogger,
        });
        const tls = new ClusterTlsSource(kc, {
          namespace: 'nemutator',
          secretName: 'nemutator-webhook-tls',
          webhookConfigName: 'nemutator',
          caConfigMapName: 'nemutator-ca',
          identity: servingIdentity(cfg),
          isLeader: () => leader.isLeader,
          log: silentLogger,
          pollMs: 200,
        });
        leader.start();
        const c = await startController(cfg, {
          log: silentLogger,
          mode: 'cluster',
          tls,
          isLeader: () => leader.isLeader,
          apiAuth: new StaticTokenAuthenticator('a'),
          authorizer: localAuthorizer,
          agentAuth: new SharedTokenAgentAuthenticator('b'),
        });
        return { identity, leader, tls, c };
      }),
    );
    try {
      const [a, b] = replicas as [(typeof replicas)[0], (typeof replicas)[0]];
      // One CA, one serving certificate, whichever replica answers.
      expect(a.c.tls.caPem).toBe(b.c.tls.caPem);
      const ca = a.c.tls.caPem;
      expect((await servedCert(a.c, ca)).fingerprint).toBe((await servedCert(b.c, ca)).fingerprint);

      // Exactly one leader, and it publishes the CA.
      await until('a leader', () => (a.leader.isLeader !== b.leader.isLeader ? true : undefined));
      const mwc = await until('caBundle in both webhooks', () => {
        const m = kube.get('mutatingwebhookconfigurations.admissionregistration.k8s.io', undefined, 'nemutator') as unknown as {
          webhooks: Array<{ clientConfig: { caBundle?: string } }>;
        };
        return m.webhooks.every((w) => w.clientConfig.caBundle) ? m : undefined;
      });
      for (const w of mwc.webhooks) expect(Buffer.from(w.clientConfig.caBundle!, 'base64').toString()).toBe(ca);
      const cm = await until('the CA ConfigMap', () => kube.get('configmaps', 'nemutator', 'nemutator-ca') as { data: Record<string, string> } | undefined);
      expect(cm.data['ca.crt']).toBe(ca);

      // The leader renews (here: forced by a clock a year ahead); both replicas swap it in.
      const leader = a.leader.isLeader ? a : b;
      const before = await servedCert(a.c, ca);
      const renewing = new ClusterTlsSource(kc, {
        namespace: 'nemutator',
        secretName: 'nemutator-webhook-tls',
        webhookConfigName: 'nemutator',
        caConfigMapName: 'nemutator-ca',
        identity: servingIdentity(config()),
        isLeader: () => true,
        log: silentLogger,
        now: () => Date.now() + 364 * 86_400_000,
      });
      await renewing.load();
      await renewing.reconcile();
      for (const r of [a, b]) {
        await until(`${r.identity} serving the renewed certificate`, async () => ((await servedCert(r.c, ca)).serial !== before.serial ? true : undefined));
      }

      // The leader steps down: the other replica takes over.
      await leader.leader.stop();
      const other = leader === a ? b : a;
      await until('the other replica to lead', () => (other.leader.isLeader ? true : undefined));
    } finally {
      for (const r of replicas) {
        await r.leader.stop();
        await r.c.stop();
      }
    }
  }, 60_000);

  it('reloads a mounted certificate when its files change', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nemu-mounted-'));
    const ca = await createCa('mounted-ca', 30);
    const write = async () => {
      const cert = await issueServingCert(ca, { dnsNames: ['localhost'], ips: ['127.0.0.1'] }, 30);
      writeFileSync(join(dir, 'tls.key'), cert.keyPem);
      writeFileSync(join(dir, 'tls.crt'), cert.certPem);
    };
    await write();
    const c = await startController(config(), {
      log: silentLogger,
      mode: 'cluster',
      tls: new MountedTlsSource(join(dir, 'tls.crt'), join(dir, 'tls.key'), undefined, silentLogger, 100),
      apiAuth: new StaticTokenAuthenticator('a'),
      authorizer: localAuthorizer,
      agentAuth: new SharedTokenAgentAuthenticator('b'),
    });
    try {
      const first = await servedCert(c, ca.certPem);
      await write();
      await until('the new mounted certificate', async () => ((await servedCert(c, ca.certPem)).serial !== first.serial ? true : undefined));
    } finally {
      await c.stop();
    }
  });
});
