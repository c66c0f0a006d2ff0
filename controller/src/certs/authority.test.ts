import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { ensureCertificates } from './authority.ts';

const identity = { dnsNames: ['nemutator-controller.nemutator.svc', 'localhost'], ips: ['127.0.0.1'] };

describe('self-managed certificates', () => {
  it('creates a CA and a serving certificate that a client trusting only the CA accepts', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nemu-tls-'));
    const b = await ensureCertificates(dir, { identity });
    expect(b.changed).toBe(true);
    expect(statSync(join(dir, 'tls.key')).mode & 0o777).toBe(0o600);
    const cert = new X509Certificate(b.certPem);
    expect(cert.subjectAltName).toContain('DNS:nemutator-controller.nemutator.svc');
    expect(cert.subjectAltName).toContain('IP Address:127.0.0.1');
    const server = createServer({ cert: b.certPem, key: b.keyPem }, (_req, res) => res.end('ok'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const { request } = await import('node:https');
    const body = await new Promise<string>((resolve, reject) => {
      request({ host: '127.0.0.1', port, ca: b.caPem, servername: 'localhost' }, (res) => {
        let s = '';
        res.on('data', (c) => (s += c));
        res.on('end', () => resolve(s));
      })
        .on('error', reject)
        .end();
    });
    expect(body).toBe('ok');
    server.close();
  });

  it('reuses valid certificates and renews one that is about to expire', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nemu-tls-'));
    const first = await ensureCertificates(dir, { identity, certValidDays: 10, renewBeforeMs: 86_400_000 });
    const again = await ensureCertificates(dir, { identity, certValidDays: 10, renewBeforeMs: 86_400_000 });
    expect(again.changed).toBe(false);
    expect(again.certPem).toBe(first.certPem);
    // 9.5 days later the certificate is within a day of expiry: renewed, same CA.
    const later = await ensureCertificates(dir, { identity, certValidDays: 10, renewBeforeMs: 86_400_000, now: () => Date.now() + 9.5 * 86_400_000 });
    expect(later.changed).toBe(true);
    expect(later.certPem).not.toBe(first.certPem);
    expect(later.caPem).toBe(first.caPem);
    expect(readFileSync(join(dir, 'tls.crt'), 'utf8')).toBe(later.certPem);
    // New names → new certificate.
    const renamed = await ensureCertificates(dir, { identity: { dnsNames: ['other.example'], ips: [] } });
    expect(new X509Certificate(renamed.certPem).subjectAltName).toContain('DNS:other.example');
  });
});
