/**
 * Where the controller's serving certificate comes from, and how changes reach the servers:
 * - LocalTlsSource: files in the state directory, issued by a self-managed CA (local mode);
 * - MountedTlsSource: files mounted from elsewhere (cert-manager), watched and reloaded;
 * - ClusterTlsSource: a Secret shared by every replica, so they all serve the same CA; the
 *   leader creates it, renews the serving certificate before expiry, keeps `caBundle` of the
 *   MutatingWebhookConfiguration current and publishes the CA for agents in a ConfigMap.
 * A change is handed to `onChange`, which swaps the TLS context of the running servers.
 */
import { X509Certificate } from 'node:crypto';
import { unwatchFile, watchFile } from 'node:fs';
import { AdmissionregistrationV1Api, CoreV1Api, type KubeConfig, PatchStrategy, setHeaderOptions, type V1Secret } from '@kubernetes/client-node';

import type { Logger } from '#common/log.js';

import { type CertificateBundle, createCa, ensureCertificates, issueServingCert, loadMountedCertificate, type ServingIdentity } from './authority.ts';

export interface TlsSource {
  /** Loads (creating if needed) the certificate to serve first. */
  load(): Promise<CertificateBundle>;
  /** Starts watching for renewals and changes. */
  start(onChange: (bundle: CertificateBundle) => void): void;
  stop(): Promise<void>;
}

const DAY = 86_400_000;

export class LocalTlsSource implements TlsSource {
  private timer: NodeJS.Timeout | undefined;
  constructor(
    private readonly dir: string,
    private readonly identity: ServingIdentity,
    private readonly log: Logger,
    private readonly checkEveryMs = 12 * 3_600_000,
  ) {}

  load(): Promise<CertificateBundle> {
    return ensureCertificates(this.dir, { identity: this.identity });
  }

  start(onChange: (b: CertificateBundle) => void): void {
    this.timer = setInterval(() => {
      void ensureCertificates(this.dir, { identity: this.identity })
        .then((b) => b.changed && onChange(b))
        .catch((e: Error) => this.log.error({ err: e.message }, 'certificate renewal failed; the current certificate stays in use'));
    }, this.checkEveryMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
  }
}

export class MountedTlsSource implements TlsSource {
  private last = '';
  constructor(
    private readonly certFile: string,
    private readonly keyFile: string,
    private readonly caFile: string | undefined,
    private readonly log: Logger,
    private readonly pollMs = 10_000,
  ) {}

  async load(): Promise<CertificateBundle> {
    const b = loadMountedCertificate(this.certFile, this.keyFile, this.caFile);
    this.last = b.certPem + b.keyPem;
    return b;
  }

  start(onChange: (b: CertificateBundle) => void): void {
    // Kubernetes updates mounted Secrets by swapping a symlink: polling the content is the
    // reliable way to notice (inotify on the file itself misses the swap).
    const check = () => {
      try {
        const b = loadMountedCertificate(this.certFile, this.keyFile, this.caFile);
        if (b.certPem + b.keyPem !== this.last) {
          new X509Certificate(b.certPem); // a half-written pair is not swapped in
          this.last = b.certPem + b.keyPem;
          this.log.info({ file: this.certFile, notAfter: b.notAfter.toISOString() }, 'mounted certificate changed; reloading');
          onChange(b);
        }
      } catch (e) {
        this.log.warn({ err: (e as Error).message }, 'mounted certificate unreadable; keeping the current one');
      }
    };
    watchFile(this.certFile, { interval: this.pollMs, persistent: false }, check);
    watchFile(this.keyFile, { interval: this.pollMs, persistent: false }, check);
  }

  async stop(): Promise<void> {
    unwatchFile(this.certFile);
    unwatchFile(this.keyFile);
  }
}

export interface ClusterTlsOptions {
  namespace: string;
  secretName: string;
  webhookConfigName: string;
  caConfigMapName: string;
  identity: ServingIdentity;
  isLeader: () => boolean;
  log: Logger;
  pollMs?: number;
  certValidDays?: number;
  renewBeforeMs?: number;
  now?: () => number;
}

function statusOf(e: unknown): number | undefined {
  return (e as { code?: number }).code ?? (e as { statusCode?: number }).statusCode;
}

const b64 = (s: string) => Buffer.from(s).toString('base64');
const unb64 = (s: string | undefined) => (s ? Buffer.from(s, 'base64').toString('utf8') : '');

interface SecretBundle extends CertificateBundle {
  caKeyPem: string;
  resourceVersion?: string;
}

export class ClusterTlsSource implements TlsSource {
  private readonly core: CoreV1Api;
  private readonly admission: AdmissionregistrationV1Api;
  private current: SecretBundle | undefined;
  private timer: NodeJS.Timeout | undefined;
  private onChange: ((b: CertificateBundle) => void) | undefined;

  constructor(
    kc: KubeConfig,
    private readonly opts: ClusterTlsOptions,
  ) {
    this.core = kc.makeApiClient(CoreV1Api);
    this.admission = kc.makeApiClient(AdmissionregistrationV1Api);
  }

  private fromSecret(s: V1Secret): SecretBundle {
    const d = s.data ?? {};
    const certPem = unb64(d['tls.crt']);
    return {
      caPem: unb64(d['ca.crt']),
      caKeyPem: unb64(d['ca.key']),
      certPem,
      keyPem: unb64(d['tls.key']),
      notAfter: new Date(Date.parse(new X509Certificate(certPem).validTo)),
      ...(s.metadata?.resourceVersion ? { resourceVersion: s.metadata.resourceVersion } : {}),
    };
  }

  private secretBody(b: SecretBundle): V1Secret {
    return {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'kubernetes.io/tls',
      metadata: {
        name: this.opts.secretName,
        namespace: this.opts.namespace,
        labels: { 'app.kubernetes.io/part-of': 'nemutator' },
        ...(b.resourceVersion ? { resourceVersion: b.resourceVersion } : {}),
      },
      data: { 'ca.crt': b64(b.caPem), 'ca.key': b64(b.caKeyPem), 'tls.crt': b64(b.certPem), 'tls.key': b64(b.keyPem) },
    };
  }

  private async read(): Promise<SecretBundle | undefined> {
    try {
      return this.fromSecret(await this.core.readNamespacedSecret({ name: this.opts.secretName, namespace: this.opts.namespace }));
    } catch (e) {
      if (statusOf(e) === 404) return undefined;
      throw e;
    }
  }

  async load(): Promise<CertificateBundle> {
    let b = await this.read();
    if (!b) {
      // The first replica to start creates the CA; a replica that loses the race reads the winner's.
      const ca = await createCa('nemutator-ca', 3650);
      const cert = await issueServingCert(ca, this.opts.identity, this.opts.certValidDays ?? 365);
      const fresh: SecretBundle = { caPem: ca.certPem, caKeyPem: ca.keyPem, certPem: cert.certPem, keyPem: cert.keyPem, notAfter: cert.notAfter };
      try {
        b = this.fromSecret(await this.core.createNamespacedSecret({ namespace: this.opts.namespace, body: this.secretBody(fresh) }));
        this.opts.log.info({ secret: this.opts.secretName }, 'created the webhook CA and serving certificate');
      } catch (e) {
        if (statusOf(e) !== 409) throw e;
        b = (await this.read())!;
      }
    }
    this.current = b;
    return b;
  }

  start(onChange: (b: CertificateBundle) => void): void {
    this.onChange = onChange;
    const loop = () => {
      void this.reconcile()
        .catch((e: Error) => this.opts.log.warn({ err: e.message }, 'certificate reconcile failed; will retry'))
        .finally(() => {
          if (this.onChange) {
            this.timer = setTimeout(loop, this.opts.pollMs ?? 30_000);
            this.timer.unref();
          }
        });
    };
    loop();
  }

  /** One pass: pick up changes others made; as leader, renew, patch caBundle, publish the CA. */
  async reconcile(): Promise<void> {
    const now = (this.opts.now ?? Date.now)();
    let b = await this.read();
    if (!b) b = (await this.load()) as SecretBundle;
    if (this.opts.isLeader()) {
      if (b.notAfter.getTime() - now < (this.opts.renewBeforeMs ?? 30 * DAY)) {
        const cert = await issueServingCert({ certPem: b.caPem, keyPem: b.caKeyPem }, this.opts.identity, this.opts.certValidDays ?? 365);
        try {
          b = this.fromSecret(
            await this.core.replaceNamespacedSecret({
              name: this.opts.secretName,
              namespace: this.opts.namespace,
              body: this.secretBody({ ...b, certPem: cert.certPem, keyPem: cert.keyPem, notAfter: cert.notAfter }),
            }),
          );
          this.opts.log.info({ notAfter: b.notAfter.toISOString() }, 'renewed the webhook serving certificate');
        } catch (e) {
          if (statusOf(e) !== 409) throw e; // someone else renewed it: picked up next pass
        }
      }
      await this.publishCa(b.caPem);
    }
    if (this.current?.certPem !== b.certPem) {
      this.current = b;
      this.onChange?.(b);
    }
  }

  private async publishCa(caPem: string): Promise<void> {
    const bundle = b64(caPem);
    try {
      const mwc = await this.admission.readMutatingWebhookConfiguration({ name: this.opts.webhookConfigName });
      const ops = (mwc.webhooks ?? []).flatMap((w, i) =>
        w.clientConfig?.caBundle === bundle
          ? []
          : [{ op: w.clientConfig?.caBundle === undefined ? 'add' : 'replace', path: `/webhooks/${i}/clientConfig/caBundle`, value: bundle }],
      );
      if (ops.length > 0) {
        await this.admission.patchMutatingWebhookConfiguration(
          { name: this.opts.webhookConfigName, body: ops },
          setHeaderOptions('Content-Type', PatchStrategy.JsonPatch),
        );
        this.opts.log.info({ webhooks: ops.length, name: this.opts.webhookConfigName }, 'caBundle updated');
      }
    } catch (e) {
      if (statusOf(e) === 404)
        this.opts.log.warn({ name: this.opts.webhookConfigName }, 'MutatingWebhookConfiguration not found; apply manifests/ (webhookConfigName)');
      else throw e;
    }
    const body = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: this.opts.caConfigMapName, namespace: this.opts.namespace },
      data: { 'ca.crt': caPem },
    };
    try {
      const cm = await this.core.readNamespacedConfigMap({ name: this.opts.caConfigMapName, namespace: this.opts.namespace });
      if (cm.data?.['ca.crt'] !== caPem)
        await this.core.replaceNamespacedConfigMap({
          name: this.opts.caConfigMapName,
          namespace: this.opts.namespace,
          body: { ...body, metadata: { ...body.metadata, resourceVersion: cm.metadata?.resourceVersion } },
        });
    } catch (e) {
      if (statusOf(e) !== 404) throw e;
      await this.core.createNamespacedConfigMap({ namespace: this.opts.namespace, body });
    }
  }

  async stop(): Promise<void> {
    this.onChange = undefined;
    if (this.timer) clearTimeout(this.timer);
  }
}
