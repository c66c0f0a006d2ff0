/**
 * Local mode (`npm start`): the controller and one agent on this machine, no cluster, no
 * Redis, no Vault. It is neither the controller nor the agent but both in one process, so it
 * lives above them (`local/`), and it is the only code that imports from both. Everything lives
 * in the state directory: the embedded store (with the secrets `nemutator secrets put` writes),
 * the generated CA and certificate, the admin token (for the CLI and curl), the agent token and
 * the agent's secrets socket (secrets.ts: local pods for `nemutator run`).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

import { type RunningAgent, startAgent } from '#agent/app.js';
import { agentSchema } from '#agent/config.js';
import type { SecretSource } from '#agent/secrets/source.js';
import { describedAs, string, url } from '#common/config.js';
import { type ConfigOf, help, loadConfig } from '#common/config.js';
import { isNemuError } from '#common/errors.js';
import { createLogger } from '#common/log.js';
import type { ControllerParts } from '#controller/app.js';
import { startController } from '#controller/app.js';
import { controllerSchema } from '#controller/config.js';
import { controllerFeatures } from '#controller/features.js';
import { SharedTokenAgentAuthenticator } from '#controller/fleet/auth.js';
import { ensureSchedulerClientCert } from '#controller/scheduler/extender-setup.js';
import { EmbeddedSecretStore } from '#controller/secrets/embedded.js';
import { registerSecretValueRoutes } from '#controller/secrets/values-routes.js';
import { localAuthorizer } from '#controller/server/access.js';
import { generateToken, StaticTokenAuthenticator } from '#controller/server/auth.js';
import type { Router } from '#controller/server/router.js';

import { embeddedSource, ensurePeercred, LocalPods, LocalTokenIssuer, localVaultSource, registerLocalPodRoutes } from './secrets.ts';

export const localSchema = {
  ...controllerSchema,
  nodeName: agentSchema.nodeName,
  cgroupRoot: agentSchema.cgroupRoot,
  cgroupVersion: agentSchema.cgroupVersion,
  procRoot: agentSchema.procRoot,
  reportInterval: agentSchema.reportInterval,
  agentMetricsPort: agentSchema.metricsPort,
  socketPath: string('', "The agent's secrets socket, which `nemutator run` programs read their secrets from. Empty: <stateDir>/run/agent.sock."),
  vaultAddr: describedAs(
    url(
      '',
      'Vault to read secrets from (with VAULT_TOKEN or ~/.vault-token) instead of the embedded store that `nemutator secrets put` writes. Empty: $VAULT_ADDR, else the embedded store.',
    ),
    '$VAULT_ADDR, else none',
  ),
  rotationInterval: agentSchema.rotationInterval,
};

export type LocalConfig = ConfigOf<typeof localSchema>;

/** What differs from a cluster deployment: loopback only, state under ./.nemutator, readable logs, no endpoint to drain. */
export const LOCAL_DEFAULTS = { host: '127.0.0.1', stateDir: '.nemutator', logFormat: 'pretty', agentMetricsPort: 9101, shutdownDrain: 0 } as const;

function readOrCreateToken(path: string): string {
  if (existsSync(path)) {
    const t = readFileSync(path, 'utf8').trim();
    if (t) return t;
  }
  const t = generateToken();
  writeFileSync(path, t + '\n', { mode: 0o600 });
  return t;
}

export interface LocalMode {
  config: LocalConfig;
  adminTokenFile: string;
  webhookUrl: string;
  apiUrl: string;
  fleetUrl: string;
  /** The scheduler extender's urlPrefix, and the client certificate kube-scheduler (or curl) presents to it. */
  scheduler?: { url: string; certFile: string; keyFile: string };
  caFile: string;
  agent: RunningAgent;
  /** The agent's secrets socket, and where its values come from. */
  secretsSocket: string;
  secretsSource: string;
  /** Why the secrets socket is not served, when it is not. */
  secretsOff?: string;
  stop(): Promise<void>;
}

/** What the secrets socket of local mode is made of (secrets.ts); the agent and the routes share it. */
interface LocalSecrets {
  pods: LocalPods;
  issuer: LocalTokenIssuer;
  socketPath: string;
  vaultAddr: string;
  /** Set once the controller's store is open (embedded mode only). */
  store?: EmbeddedSecretStore;
  /** Set once the agent runs. */
  agent?: RunningAgent;
}

/** REST routes only local mode has: writing the embedded store, registering `nemutator run` pods. */
function localRoutes(config: LocalConfig, secrets: LocalSecrets, log: ReturnType<typeof createLogger>) {
  const features = controllerFeatures();
  return {
    ...features,
    routes: (router: Router, parts: ControllerParts) => {
      features.routes(router, parts);
      if (!secrets.vaultAddr) secrets.store = new EmbeddedSecretStore(parts.store);
      registerSecretValueRoutes(router, {
        store: secrets.store,
        vaultAddr: secrets.vaultAddr,
        log: log.child({ program: 'controller', component: 'secrets' }),
      });
      registerLocalPodRoutes(router, {
        pods: secrets.pods,
        issuer: secrets.issuer,
        nodeName: config.nodeName,
        audience: agentSchema.vaultAudience.default,
        socketPath: secrets.socketPath,
        cgroupRoot: config.cgroupRoot,
        forget: async (uid) => secrets.agent?.secrets?.service.forgetPod(uid),
      });
    },
  };
}

export async function startLocal(
  config: LocalConfig,
  log = createLogger({ level: config.logLevel, pretty: config.logFormat === 'pretty', name: 'nemutator' }),
  env: NodeJS.ProcessEnv = process.env,
): Promise<LocalMode> {
  const stateDir = resolve(config.stateDir);
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const adminTokenFile = join(stateDir, 'admin-token');
  const adminToken = readOrCreateToken(adminTokenFile);
  const agentToken = readOrCreateToken(join(stateDir, 'agent-token'));
  const vaultAddr = config.vaultAddr || env.VAULT_ADDR?.trim() || '';
  const agentDefaults = loadConfig(agentSchema, { program: 'agent', argv: [], env: {} }).config;
  // Fails before anything listens when VAULT_ADDR is set without a token.
  const vault = vaultAddr ? localVaultSource(vaultAddr, env, agentDefaults.vaultTimeout) : undefined;
  const secrets: LocalSecrets = {
    pods: new LocalPods(config.nodeName),
    issuer: await LocalTokenIssuer.create(),
    socketPath: resolve(config.socketPath || join(stateDir, 'run', 'agent.sock')),
    vaultAddr,
  };
  const controller = await startController(
    { ...config, stateDir },
    {
      log: log.child({ program: 'controller' }),
      mode: 'local',
      apiAuth: new StaticTokenAuthenticator(adminToken),
      authorizer: localAuthorizer,
      agentAuth: new SharedTokenAgentAuthenticator(agentToken),
      ...localRoutes(config, secrets, log),
    },
  );
  let scheduler: LocalMode['scheduler'];
  if (controller.schedulerUrl && !config.tlsCertFile) {
    const name = config.schedulerClientNames.split(',')[0]?.trim();
    try {
      const client = await ensureSchedulerClientCert(join(stateDir, 'tls'), name && name !== '*' ? name : undefined);
      scheduler = { url: controller.schedulerUrl, certFile: client.certFile, keyFile: client.keyFile };
    } catch (e) {
      await controller.stop();
      throw e;
    }
  }
  const source: SecretSource = vault ?? embeddedSource(secrets.store!);
  const secretsOff = ensurePeercred();
  let agent: RunningAgent;
  try {
    agent = await startAgent(
      {
        ...agentDefaults,
        nodeName: config.nodeName,
        socketPath: secrets.socketPath,
        rotationInterval: config.rotationInterval,
        kubeconfig: config.kubeconfig,
        controllerUrl: controller.fleetUrl,
        cgroupRoot: config.cgroupRoot,
        cgroupVersion: config.cgroupVersion,
        procRoot: config.procRoot,
        reportInterval: config.reportInterval,
        host: config.host,
        metricsPort: config.agentMetricsPort,
        logLevel: config.logLevel,
      },
      {
        log: log.child({ program: 'agent' }),
        token: () => agentToken,
        ca: controller.tls.caPem,
        ...(secretsOff ? {} : { secrets: { pods: secrets.pods, fetchJwks: async () => secrets.issuer.jwks(), source } }),
      },
    );
  } catch (e) {
    await controller.stop();
    throw e;
  }
  secrets.agent = agent;
  // A new version is a rotation: pushed at once to the processes holding the path.
  secrets.store?.onChange((path) => {
    void agent.secrets?.service.rotate(path).catch((e: Error) => log.warn({ path, err: e.message }, 'pushing a new secret version failed'));
  });
  return {
    config,
    adminTokenFile,
    webhookUrl: controller.webhookUrl,
    apiUrl: controller.apiUrl,
    fleetUrl: controller.fleetUrl,
    ...(scheduler ? { scheduler } : {}),
    caFile: join(stateDir, 'tls', 'ca.crt'),
    agent,
    secretsSocket: secrets.socketPath,
    secretsSource: vaultAddr ? `Vault at ${vaultAddr}` : 'embedded store',
    ...(secretsOff ? { secretsOff } : {}),
    async stop() {
      await agent.stop();
      await controller.shutdown();
    },
  };
}

export function banner(m: LocalMode): string {
  const api = m.apiUrl.replace(/\/api\/v1$/, '');
  return [
    '',
    'Nemutator is running in local mode.',
    `  admission webhook  ${m.webhookUrl}   (CA: ${m.caFile})`,
    `  REST API           ${m.apiUrl}   (health: ${api}/healthz, ${api}/readyz)`,
    `  fleet hub          ${m.fleetUrl}   (agent for node ${m.config.nodeName} connected)`,
    ...(m.agent.metricsUrl ? [`  agent metrics      ${m.agent.metricsUrl}`] : []),
    m.scheduler
      ? `  scheduler extender ${m.scheduler.url}/{filter,prioritize}   (client certificate: ${m.scheduler.certFile})`
      : '  scheduler extender off (--scheduler-extender false, or no CA to check client certificates)',
    `  admin token        ${m.adminTokenFile}`,
    m.secretsOff ? `  secrets socket     off: ${m.secretsOff}` : `  secrets socket     ${m.secretsSocket}   (values from the ${m.secretsSource})`,
    '',
    'Try:',
    `  curl -s -H "Authorization: Bearer $(cat ${m.adminTokenFile})" ${m.apiUrl}/nodes`,
    `  npx nemutator nodes --state-dir ${m.config.stateDir}`,
    `  printf %s s3cret | npx nemutator secrets put secret/app/db password=- --state-dir ${m.config.stateDir}`,
    `  sudo npx nemutator run --env DB_PASSWORD=vault:secret/app/db#password --state-dir ${m.config.stateDir} -- sh -c 'echo got \${#DB_PASSWORD} characters'`,
    '',
    'Ctrl-C stops everything.',
    '',
  ].join('\n');
}

async function main(): Promise<void> {
  let loaded;
  try {
    loaded = loadConfig(localSchema, { program: 'nemutator (local mode)', defaults: LOCAL_DEFAULTS });
  } catch (e) {
    console.error(isNemuError(e) ? `${e.code}: ${e.message}` : e);
    process.exit(2);
  }
  if (loaded.help) {
    console.log(help(localSchema, 'npm start --'));
    return;
  }
  let local: LocalMode;
  try {
    local = await startLocal(loaded.config);
  } catch (e) {
    console.error(isNemuError(e) ? `${e.code}: ${e.message}` : e);
    process.exit(1);
  }
  process.stdout.write(banner(local));
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`\n${signal}: stopping…`);
    const force = setTimeout(() => process.exit(1), local.config.shutdownDrain + local.config.shutdownTimeout + 5000);
    force.unref();
    void local.stop().then(() => {
      console.log('stopped.');
      process.exit(0);
    });
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('local/src/main.ts')) {
  void main();
}
