import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { credentialsFromKubeconfig } from './api.ts';

function kubeconfig(user: Record<string, unknown>, cluster: Record<string, unknown> = { server: 'https://10.0.0.1:6443/' }, current = 'ctx'): string {
  const dir = mkdtempSync(join(tmpdir(), 'nemu-kc-'));
  writeFileSync(join(dir, 'ca.crt'), 'CA-FROM-FILE');
  writeFileSync(join(dir, 'token'), 'token-from-file\n');
  const path = join(dir, 'config');
  writeFileSync(
    path,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      'current-context': current,
      contexts: [{ name: 'ctx', context: { cluster: 'c', user: 'u' } }],
      clusters: [{ name: 'c', cluster }],
      users: [{ name: 'u', user }],
    }),
  );
  return path;
}

describe('kubeconfig credentials', () => {
  it('reads a bearer token, inline CA data, and trims the server URL', () => {
    const c = credentialsFromKubeconfig(
      kubeconfig({ token: 'abc' }, { server: 'https://10.0.0.1:6443/', 'certificate-authority-data': Buffer.from('CA-DATA').toString('base64') }),
    );
    expect(c.server).toBe('https://10.0.0.1:6443');
    expect(c.ca).toBe('CA-DATA');
    expect(c.token?.()).toBe('abc');
  });

  it('reads files relative to the kubeconfig, token files afresh, and client certificates', () => {
    const c = credentialsFromKubeconfig(
      kubeconfig(
        {
          tokenFile: '/nonexistent',
          'client-certificate-data': Buffer.from('CERT').toString('base64'),
          'client-key-data': Buffer.from('KEY').toString('base64'),
        },
        { server: 'https://x', 'certificate-authority': 'ca.crt' },
      ),
    );
    expect(c.ca).toBe('CA-FROM-FILE');
    expect(c.cert).toBe('CERT');
    expect(c.key).toBe('KEY');
    expect(() => c.token?.()).toThrow(/nonexistent/);
  });

  it('says what is wrong with an unusable kubeconfig', () => {
    expect(() => credentialsFromKubeconfig('/nonexistent/kubeconfig')).toThrow(/cannot read the kubeconfig \/nonexistent\/kubeconfig.*--kubeconfig/);
    expect(() => credentialsFromKubeconfig(kubeconfig({ token: 'x' }, { server: 'https://x' }, 'missing'))).toThrow(/no current context/);
  });
});
