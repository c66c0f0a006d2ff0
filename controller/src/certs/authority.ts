/**
 * Self-managed TLS for the webhook and the fleet hub: a CA and a serving certificate,
 * kept in the state directory, created when none is mounted and renewed before expiry.
 * ECDSA P-256 keys (fast to make, accepted by kube-apiserver and every client we use).
 */
import { webcrypto, X509Certificate as NodeX509 } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';

import { ErrorCodes, NemuError } from '#common/errors.js';

x509.cryptoProvider.set(webcrypto as never);

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY = 86_400_000;

export interface ServingIdentity {
  dnsNames: string[];
  ips: string[];
}

export interface CertificateBundle {
  caPem: string;
  certPem: string;
  keyPem: string;
  notAfter: Date;
}

function toPem(der: ArrayBuffer, label: string): string {
  const b64 = Buffer.from(der)
    .toString('base64')
    .replace(/(.{64})/g, '$1\n')
    .trimEnd();
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

async function importKey(pem: string): Promise<CryptoKey> {
  const der = Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
  return webcrypto.subtle.importKey('pkcs8', der, ALG, true, ['sign']) as Promise<CryptoKey>;
}

function serial(): string {
  return Buffer.from(webcrypto.getRandomValues(new Uint8Array(16)))
    .toString('hex')
    .replace(/^[89a-f]/, '1');
}

export async function createCa(commonName: string, validDays: number): Promise<{ certPem: string; keyPem: string }> {
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${commonName}`,
    notBefore: new Date(now - 5 * 60_000),
    notAfter: new Date(now + validDays * DAY),
    keys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem') + '\n', keyPem: toPem(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY') };
}

export async function issueServingCert(
  ca: { certPem: string; keyPem: string },
  id: ServingIdentity,
  validDays: number,
): Promise<{ certPem: string; keyPem: string; notAfter: Date }> {
  const caCert = new x509.X509Certificate(ca.certPem);
  const caKey = await importKey(ca.keyPem);
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
  const now = Date.now();
  const notAfter = new Date(now + validDays * DAY);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${id.dnsNames[0] ?? id.ips[0] ?? 'nemutator'}`,
    issuer: caCert.subject,
    notBefore: new Date(now - 5 * 60_000),
    notAfter,
    signingKey: caKey,
    publicKey: keys.publicKey,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([
        ...id.dnsNames.map((value) => ({ type: 'dns' as const, value })),
        ...id.ips.map((value) => ({ type: 'ip' as const, value })),
      ]),
      await x509.AuthorityKeyIdentifierExtension.create(caCert),
    ],
  });
  return { certPem: cert.toString('pem') + '\n', keyPem: toPem(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY'), notAfter };
}

/** A client certificate (clientAuth) for `commonName`, signed by `ca`: what kube-scheduler presents to the extender. */
export async function issueClientCert(
  ca: { certPem: string; keyPem: string },
  commonName: string,
  validDays: number,
): Promise<{ certPem: string; keyPem: string; notAfter: Date }> {
  const caCert = new x509.X509Certificate(ca.certPem);
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
  const now = Date.now();
  const notAfter = new Date(now + validDays * DAY);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${commonName}`,
    issuer: caCert.subject,
    notBefore: new Date(now - 5 * 60_000),
    notAfter,
    signingKey: await importKey(ca.keyPem),
    publicKey: keys.publicKey,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
      await x509.AuthorityKeyIdentifierExtension.create(caCert),
    ],
  });
  return { certPem: cert.toString('pem') + '\n', keyPem: toPem(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY'), notAfter };
}

function writeAtomic(path: string, content: string, mode: number): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, content, { mode });
  renameSync(tmp, path);
}

function sameNames(certPem: string, id: ServingIdentity): boolean {
  const san = new NodeX509(certPem).subjectAltName ?? '';
  return id.dnsNames.every((d) => san.includes(`DNS:${d}`)) && id.ips.every((ip) => san.includes(`IP Address:${ip}`));
}

export interface EnsureOptions {
  identity: ServingIdentity;
  caValidDays?: number;
  certValidDays?: number;
  /** Renew the serving certificate when it expires within this many milliseconds. */
  renewBeforeMs?: number;
  now?: () => number;
}

/**
 * Loads the CA and serving certificate from `dir`, creating or renewing what is missing,
 * expiring or issued for other names. Returns the bundle in use and whether it changed.
 */
export async function ensureCertificates(dir: string, opts: EnsureOptions): Promise<CertificateBundle & { changed: boolean }> {
  const now = opts.now ?? Date.now;
  const renewBefore = opts.renewBeforeMs ?? 30 * DAY;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const f = { caCert: join(dir, 'ca.crt'), caKey: join(dir, 'ca.key'), cert: join(dir, 'tls.crt'), key: join(dir, 'tls.key') };
  let changed = false;
  let ca: { certPem: string; keyPem: string };
  try {
    const caCertPem = existsSync(f.caCert) && existsSync(f.caKey) ? readFileSync(f.caCert, 'utf8') : '';
    // The CA must outlive at least two serving certificates' renewal windows.
    if (caCertPem && Date.parse(new NodeX509(caCertPem).validTo) - now() > renewBefore * 2) {
      ca = { certPem: caCertPem, keyPem: readFileSync(f.caKey, 'utf8') };
    } else {
      ca = await createCa('nemutator-ca', opts.caValidDays ?? 3650);
      writeAtomic(f.caKey, ca.keyPem, 0o600);
      writeAtomic(f.caCert, ca.certPem, 0o644);
      changed = true;
    }
    let certPem = existsSync(f.cert) ? readFileSync(f.cert, 'utf8') : '';
    let keyPem = existsSync(f.key) ? readFileSync(f.key, 'utf8') : '';
    const current = certPem !== '' && keyPem !== '' && !changed ? new NodeX509(certPem) : undefined;
    const valid =
      current !== undefined &&
      Date.parse(current.validTo) - now() > renewBefore &&
      current.checkIssued(new NodeX509(ca.certPem)) &&
      sameNames(certPem, opts.identity);
    if (!valid) {
      const issued = await issueServingCert(ca, opts.identity, opts.certValidDays ?? 365);
      certPem = issued.certPem;
      keyPem = issued.keyPem;
      writeAtomic(f.key, keyPem, 0o600);
      writeAtomic(f.cert, certPem, 0o644);
      changed = true;
    }
    return { caPem: ca.certPem, certPem, keyPem, notAfter: new Date(Date.parse(new NodeX509(certPem).validTo)), changed };
  } catch (e) {
    if (e instanceof NemuError) throw e;
    throw new NemuError(
      ErrorCodes.TLS,
      `cannot prepare TLS certificates in ${dir}: ${(e as Error).message}; check that the directory is writable, or mount a certificate with --tls-cert-file/--tls-key-file`,
      { cause: e },
    );
  }
}

/** Reads a mounted certificate (e.g. from cert-manager). */
export function loadMountedCertificate(certFile: string, keyFile: string, caFile?: string): CertificateBundle {
  try {
    const certPem = readFileSync(certFile, 'utf8');
    const keyPem = readFileSync(keyFile, 'utf8');
    const caPem = caFile && existsSync(caFile) ? readFileSync(caFile, 'utf8') : '';
    return { caPem, certPem, keyPem, notAfter: new Date(Date.parse(new NodeX509(certPem).validTo)) };
  } catch (e) {
    throw new NemuError(ErrorCodes.TLS, `cannot load the mounted certificate ${certFile} / ${keyFile}: ${(e as Error).message}`, { cause: e });
  }
}
