// In a cluster with the self-managed CA, the leader keeps kube-scheduler's client certificate
// for the extender in a Secret a second scheduler mounts; against the kube-apiserver double.
import { X509Certificate } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';

import { loadKubeConfig } from '#common/kube.js';
import { silentLogger } from '#common/log.js';
import { createCa } from '#controller/certs/authority.js';
import { SchedulerClientSecret } from '#controller/scheduler/extender-client-secret.js';

import { type KubeDouble, startKubeDouble } from '../harness/kube/index.ts';

const b64 = (s: string) => Buffer.from(s).toString('base64');
const unb64 = (s: string) => Buffer.from(s, 'base64').toString('utf8');

describe('scheduler client certificate Secret', () => {
  let kube: KubeDouble | undefined;
  afterEach(async () => {
    await kube?.stop();
    kube = undefined;
  });

  it('the leader issues it from the controller CA once, keeps it while valid, and reissues it when the CA changes; a follower writes nothing', async () => {
    kube = await startKubeDouble();
    kube.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'nemutator' } });
    const putCa = (ca: { certPem: string; keyPem: string }) =>
      kube!.put({
        apiVersion: 'v1',
        kind: 'Secret',
        type: 'kubernetes.io/tls',
        metadata: { name: 'nemutator-webhook-tls', namespace: 'nemutator' },
        data: { 'ca.crt': b64(ca.certPem), 'ca.key': b64(ca.keyPem), 'tls.crt': '', 'tls.key': '' },
      });
    const ca = await createCa('nemutator-ca', 30);
    putCa(ca);
    const leader = { now: false };
    const secret = new SchedulerClientSecret(loadKubeConfig(kube.kubeconfigPath)!, {
      namespace: 'nemutator',
      caSecretName: 'nemutator-webhook-tls',
      secretName: 'nemutator-scheduler-client',
      commonName: 'nemutator-scheduler',
      isLeader: () => leader.now,
      log: silentLogger,
    });
    expect(await secret.reconcile()).toBe(false);
    expect(kube.get('secrets', 'nemutator', 'nemutator-scheduler-client')).toBeUndefined();

    leader.now = true;
    expect(await secret.reconcile()).toBe(true);
    const written = kube.get('secrets', 'nemutator', 'nemutator-scheduler-client') as unknown as { type: string; data: Record<string, string> };
    expect(written.type).toBe('kubernetes.io/tls');
    const cert = new X509Certificate(unb64(written.data['tls.crt']!));
    expect(cert.subject).toContain('CN=nemutator-scheduler');
    expect(cert.checkIssued(new X509Certificate(ca.certPem))).toBe(true);
    expect(unb64(written.data['ca.crt']!)).toBe(ca.certPem);
    expect(unb64(written.data['tls.key']!)).toMatch(/BEGIN PRIVATE KEY/);

    expect(await secret.reconcile()).toBe(false);

    const next = await createCa('nemutator-ca', 30);
    putCa(next);
    expect(await secret.reconcile()).toBe(true);
    const again = kube.get('secrets', 'nemutator', 'nemutator-scheduler-client') as unknown as { data: Record<string, string> };
    expect(new X509Certificate(unb64(again.data['tls.crt']!)).checkIssued(new X509Certificate(next.certPem))).toBe(true);
  });
});
