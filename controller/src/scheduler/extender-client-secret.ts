/**
 * In a cluster with the self-managed CA: the client certificate kube-scheduler presents to
 * the extender, kept by the leader in a Secret (`schedulerClientSecretName`, type
 * kubernetes.io/tls: tls.crt, tls.key, and ca.crt to trust the extender's serving
 * certificate) that a second scheduler in the controller's namespace mounts for its
 * extender `tlsConfig`. Issued by the CA in the controller's TLS Secret; reissued when
 * missing, expiring within 30 days, or signed by another CA (the CA was replaced).
 */
import { X509Certificate } from 'node:crypto';
import { CoreV1Api, type KubeConfig, type V1Secret } from '@kubernetes/client-node';

import type { Logger } from '#common/log.js';

import { issueClientCert } from '../certs/authority.ts';

export interface ClientSecretOptions {
  namespace: string;
  /** The Secret holding the self-managed CA (ca.crt, ca.key): tlsSecretName. */
  caSecretName: string;
  secretName: string;
  commonName: string;
  isLeader: () => boolean;
  log: Logger;
  pollMs?: number;
}

const RENEW_BEFORE_MS = 30 * 86_400_000;
const b64 = (s: string) => Buffer.from(s).toString('base64');
const unb64 = (s: string | undefined) => (s ? Buffer.from(s, 'base64').toString('utf8') : '');
const statusOf = (e: unknown): number | undefined => (e as { code?: number }).code ?? (e as { statusCode?: number }).statusCode;

export class SchedulerClientSecret {
  private readonly core: CoreV1Api;
  private timer: NodeJS.Timeout | undefined;
  private stopped = true;

  constructor(
    kc: KubeConfig,
    private readonly opts: ClientSecretOptions,
  ) {
    this.core = kc.makeApiClient(CoreV1Api);
  }

  private async read(name: string): Promise<V1Secret | undefined> {
    try {
      return await this.core.readNamespacedSecret({ name, namespace: this.opts.namespace });
    } catch (e) {
      if (statusOf(e) === 404) return undefined;
      throw e;
    }
  }

  /** Whether `secret` holds a certificate for commonName, issued by `caPem`, valid for 30 days more. */
  private current(secret: V1Secret | undefined, caPem: string): boolean {
    const certPem = unb64(secret?.data?.['tls.crt']);
    if (!certPem || unb64(secret?.data?.['ca.crt']) !== caPem) return false;
    const cert = new X509Certificate(certPem);
    return (
      cert.checkIssued(new X509Certificate(caPem)) &&
      cert.subject.includes(`CN=${this.opts.commonName}`) &&
      Date.parse(cert.validTo) - Date.now() > RENEW_BEFORE_MS
    );
  }

  /** One pass (leader only); returns whether it wrote the Secret. */
  async reconcile(): Promise<boolean> {
    if (!this.opts.isLeader()) return false;
    const ca = await this.read(this.opts.caSecretName);
    const caPem = unb64(ca?.data?.['ca.crt']);
    const caKeyPem = unb64(ca?.data?.['ca.key']);
    if (!caPem || !caKeyPem) return false;
    const existing = await this.read(this.opts.secretName);
    if (this.current(existing, caPem)) return false;
    const issued = await issueClientCert({ certPem: caPem, keyPem: caKeyPem }, this.opts.commonName, 365);
    const body: V1Secret = {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'kubernetes.io/tls',
      metadata: {
        name: this.opts.secretName,
        namespace: this.opts.namespace,
        labels: { 'app.kubernetes.io/part-of': 'nemutator' },
        ...(existing?.metadata?.resourceVersion ? { resourceVersion: existing.metadata.resourceVersion } : {}),
      },
      data: { 'tls.crt': b64(issued.certPem), 'tls.key': b64(issued.keyPem), 'ca.crt': b64(caPem) },
    };
    if (existing) await this.core.replaceNamespacedSecret({ name: this.opts.secretName, namespace: this.opts.namespace, body });
    else await this.core.createNamespacedSecret({ namespace: this.opts.namespace, body });
    this.opts.log.info({ secret: this.opts.secretName, notAfter: issued.notAfter.toISOString() }, 'issued the scheduler extender client certificate');
    return true;
  }

  start(): void {
    this.stopped = false;
    const loop = () => {
      void this.reconcile()
        .catch((e: Error) => this.opts.log.warn({ err: e.message }, 'scheduler client certificate: reconcile failed; will retry'))
        .finally(() => {
          if (this.stopped) return;
          this.timer = setTimeout(loop, this.opts.pollMs ?? 60_000);
          this.timer.unref();
        });
    };
    loop();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
