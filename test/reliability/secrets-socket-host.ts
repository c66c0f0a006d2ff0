// The agent's secrets socket alone, in its own process, for the listener fuzz test: the real
// server and service (peer credentials, pod identification), a Vault address nothing listens
// on and no pods, so every request from the test (not a pod) is refused: what is fuzzed is
// the socket's HTTP handling. Prints "listening <path>" once it serves.
import { agentSchema } from '#agent/config.js';
import type { KubeApi } from '#agent/kube/api.js';
import { startSecrets } from '#agent/secrets/index.js';
import { loadConfig } from '#common/config.js';
import { createLogger } from '#common/log.js';

const socketPath = process.argv[2];
if (!socketPath) throw new Error('usage: secrets-socket-host.ts <socket path>');
const { config } = loadConfig(agentSchema, {
  program: 'secrets-socket-host',
  argv: [],
  env: {},
  defaults: { socketPath, vaultAddr: 'http://127.0.0.1:9', nodeName: 'fuzz-node', socketMode: '0600' },
});
const running = await startSecrets(config, {
  log: createLogger({ level: 'warn', pretty: false, name: 'secrets-socket-host' }),
  kube: {} as KubeApi,
  pods: { get: () => undefined },
  fetchJwks: async () => ({ keys: [] }),
});
console.log(`listening ${running.server.path}`);
process.on('SIGTERM', () => void running.stop().then(() => process.exit(0)));
