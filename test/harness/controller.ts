// A controller for tests: the configuration every test starts from (loopback, ports chosen
// by the kernel, no Node.js process metrics), and the webhook configuration that points the
// kube double at it.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { loadConfig } from '#common/config.js';
import { ErrorCodes, NemuError } from '#common/errors.js';
import { silentLogger } from '#common/log.js';
import type { RunningController } from '#controller/app.js';
import { runCli } from '#controller/cli/main.js';
import { send, type TransportInit } from '#controller/cli/transport.js';
import { type ControllerConfig, controllerSchema } from '#controller/config.js';
import { LOCAL_DEFAULTS, type LocalMode, localSchema, startLocal } from '#local/main.js';

import { until } from './wait.ts';

/**
 * Controller configuration for a test. A string in `overrides` is parsed as a flag's value would
 * be (`nodeStaleAfter: '1s'` becomes 1000 ms; a bad one throws NEMU_ERR_CONFIG naming the key);
 * other values are taken as they are (already the parsed type).
 */
export function testControllerConfig(overrides: Record<string, unknown> = {}): ControllerConfig {
  const parsed = Object.fromEntries(
    Object.entries(overrides).map(([key, v]) => {
      const spec = (controllerSchema as Record<string, { parse(raw: unknown): unknown } | undefined>)[key];
      if (typeof v !== 'string' || !spec) return [key, v];
      try {
        return [key, spec.parse(v)];
      } catch {
        throw new NemuError(ErrorCodes.CONFIG, `testControllerConfig: ${key} ${JSON.stringify(v)} is not a valid value (docs/configuration.md)`);
      }
    }),
  );
  return loadConfig(controllerSchema, {
    program: 'test',
    argv: [],
    env: {},
    defaults: {
      host: '127.0.0.1',
      webhookPort: 0,
      apiPort: 0,
      fleetPort: 0,
      schedulerPort: 0,
      metricsDefaults: false,
      stateDir: mkdtempSync(join(tmpdir(), 'nemu-test-')),
      ...parsed,
    },
  }).config;
}

/** The MutatingWebhookConfiguration `nemutator` for pods (CREATE) and deployments (CREATE, UPDATE), calling `c`. */
export function webhookConfiguration(c: RunningController): Record<string, unknown> {
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: { name: 'nemutator' },
    webhooks: [
      {
        name: 'mutate.nemutator.io',
        clientConfig: { url: c.webhookUrl, caBundle: Buffer.from(c.tls.caPem).toString('base64') },
        rules: [
          { apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'] },
          { apiGroups: ['apps'], apiVersions: ['v1'], operations: ['CREATE', 'UPDATE'], resources: ['deployments'] },
        ],
        admissionReviewVersions: ['v1'],
        sideEffects: 'NoneOnDryRun',
        failurePolicy: 'Ignore',
        reinvocationPolicy: 'IfNeeded',
        timeoutSeconds: 5,
      },
    ],
  };
}

/**
 * `fetch` for a controller's REST API: outside local mode on loopback it is served over HTTPS
 * with the controller's own CA, which this trusts (and nothing else).
 */
export function apiFetch(c: { tls: { caPem: string } }, url: string, init: Omit<TransportInit, 'ca'> = {}): Promise<Response> {
  return send(url, { ...init, ca: c.tls.caPem });
}

/** The controller's CA in a file, for the CLI's --ca-file. */
export function caFileOf(c: { tls: { caPem: string } }): string {
  const file = join(mkdtempSync(join(tmpdir(), 'nemu-ca-')), 'ca.crt');
  writeFileSync(file, c.tls.caPem);
  return file;
}

export interface TestLocal {
  local: LocalMode;
  stateDir: string;
  /** Runs the `nemutator` CLI against this local mode, capturing what it prints. */
  cli(...args: string[]): Promise<{ code: number; out: string; err: string }>;
  /** Stops local mode and removes its state directory. */
  stop(): Promise<void>;
}

/**
 * Local mode (`npm start`) in this process, on kernel-chosen ports and a fresh state
 * directory; waits for the in-process agent's first report.
 */
export async function startTestLocal(overrides: Record<string, unknown> = {}): Promise<TestLocal> {
  const stateDir = mkdtempSync(join(tmpdir(), 'nemu-local-'));
  const { config } = loadConfig(localSchema, {
    program: 'test',
    argv: [],
    env: {},
    defaults: {
      ...LOCAL_DEFAULTS,
      stateDir,
      webhookPort: 0,
      apiPort: 0,
      fleetPort: 0,
      schedulerPort: 0,
      agentMetricsPort: 0,
      reportInterval: 1000,
      ...overrides,
    },
  });
  const local = await startLocal(config, silentLogger);
  await until('the in-process agent collects its first report', () => local.agent.lastReport(), 10_000, 50);
  const server = local.apiUrl.replace(/\/api\/v1$/, '');
  return {
    local,
    stateDir,
    async cli(...args) {
      let out = '';
      let err = '';
      const code = await runCli([...args, '--server', server, '--state-dir', stateDir], { out: (s) => (out += s + '\n'), err: (s) => (err += s + '\n') });
      return { code, out, err };
    },
    async stop() {
      await local.stop();
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}
