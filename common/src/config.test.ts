import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { boolean, duration, envName, flagName, integer, list, loadConfig, oneOf, port, string, url } from './config.ts';
import { NemuError } from './errors.ts';

const schema = {
  webhookPort: port(8443, 'webhook port'),
  reportInterval: duration('10s', 'how often', 1000),
  logLevel: oneOf(['debug', 'info', 'warn'] as const, 'info', 'level'),
  dryRun: boolean(false, 'dry run'),
  namespaces: list(['kube-system'], 'excluded'),
  prometheusUrl: url('', 'prometheus'),
  replicas: integer(2, 'replicas', 1, 10),
  adminToken: string('', 'token', { secret: true, pattern: /^[a-z]{8,}$/ }),
};

function load(argv: string[], env: Record<string, string> = {}) {
  return loadConfig(schema, { program: 'test', argv, env });
}

function errorOf(fn: () => unknown): NemuError {
  try {
    fn();
  } catch (e) {
    return e as NemuError;
  }
  throw new Error('expected an error');
}

describe('configuration', () => {
  it('uses defaults, and freezes the result', () => {
    const { config } = load([]);
    expect(config.webhookPort).toBe(8443);
    expect(config.reportInterval).toBe(10_000);
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('takes flags over environment over file over defaults', () => {
    const dir = mkdtempSync(join(tmpdir(), 'nemu-cfg-'));
    const file = join(dir, 'c.yaml');
    writeFileSync(file, 'webhookPort: 9000\nlogLevel: warn\nreplicas: 3\n');
    const { config } = load(['--config', file, '--webhook-port', '9100', '--dry-run'], { NEMUTATOR_LOG_LEVEL: 'debug', NEMUTATOR_WEBHOOK_PORT: '9050' });
    expect(config.webhookPort).toBe(9100);
    expect(config.logLevel).toBe('debug');
    expect(config.replicas).toBe(3);
    expect(config.dryRun).toBe(true);
  });

  it('names the key, the source, the value and the expected form for a bad value', () => {
    const e = errorOf(() => load(['--webhook-port', 'abc']));
    expect(e.code).toBe('NEMU_ERR_CONFIG');
    expect(e.message).toContain('webhookPort');
    expect(e.message).toContain('--webhook-port');
    expect(e.message).toContain('"abc"');
    expect(e.message).toContain('a TCP port');
    const e2 = errorOf(() => load([], { NEMUTATOR_REPORT_INTERVAL: '10 parsecs' }));
    expect(e2.message).toContain('reportInterval');
    expect(e2.message).toContain('NEMUTATOR_REPORT_INTERVAL');
    expect(e2.message).toContain('a duration');
    expect(errorOf(() => load(['--replicas=11'])).message).toContain('from 1 to 10');
    expect(errorOf(() => load(['--prometheus-url', 'ftp://x'])).message).toContain('a URL');
  });

  it('never prints a secret value in an error', () => {
    const e = errorOf(() => load(['--admin-token', 'SHORT-secret-1']));
    expect(e.message).toContain('adminToken');
    expect(e.message).not.toContain('SHORT-secret-1');
  });

  it('refuses unknown flags and unknown file keys', () => {
    expect(errorOf(() => load(['--wbhook-port', '1'])).message).toContain('unknown flag --wbhook-port');
    const dir = mkdtempSync(join(tmpdir(), 'nemu-cfg-'));
    writeFileSync(join(dir, 'c.yaml'), 'webhookPrt: 1\n');
    expect(errorOf(() => load(['--config', join(dir, 'c.yaml')])).message).toContain('unknown key webhookPrt');
  });

  it('derives env and flag names from keys', () => {
    expect(envName('webhookPort')).toBe('NEMUTATOR_WEBHOOK_PORT');
    expect(flagName('cgroupRoot')).toBe('--cgroup-root');
  });
});
