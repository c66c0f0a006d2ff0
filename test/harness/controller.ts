// A controller for tests: the configuration every test starts from (loopback, ports chosen
// by the kernel, no Node.js process metrics), and the webhook configuration that points the
// kube double at it.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../common/src/config.ts';
import type { RunningController } from '../../controller/src/app.ts';
import { controllerSchema, type ControllerConfig } from '../../controller/src/config.ts';

/** Controller configuration for a test; `overrides` are raw values, as a config file would give them. */
export function testControllerConfig(overrides: Record<string, unknown> = {}): ControllerConfig {
  return loadConfig(controllerSchema, {
    program: 'test',
    argv: [],
    env: {},
    defaults: { host: '127.0.0.1', webhookPort: 0, apiPort: 0, fleetPort: 0, metricsDefaults: false, stateDir: mkdtempSync(join(tmpdir(), 'nemu-test-')), ...overrides },
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
