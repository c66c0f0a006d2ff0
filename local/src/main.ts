/**
 * Local mode (`npm start`): the controller and one agent on this machine, no cluster, no
 * Redis, no Vault. It is neither the controller nor the agent but both in one process, so it
 * lives above them (`local/`), and it is the only code that imports from both. Everything lives
 * in the state directory: the embedded store, the generated CA and certificate, the admin
 * token (for the CLI and curl) and the agent token.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { agentSchema } from '../../agent/src/config.ts';
import { startAgent, type RunningAgent } from '../../agent/src/app.ts';
import { help, loadConfig, type ConfigOf } from '../../common/src/config.ts';
import { isNemuError } from '../../common/src/errors.ts';
import { createLogger } from '../../common/src/log.ts';
import { startController } from '../../controller/src/app.ts';
import { controllerSchema } from '../../controller/src/config.ts';
import { controllerFeatures } from '../../controller/src/features.ts';
import { SharedTokenAgentAuthenticator } from '../../controller/src/fleet/auth.ts';
import { localAuthorizer } from '../../controller/src/server/access.ts';
import { StaticTokenAuthenticator, generateToken } from '../../controller/src/server/auth.ts';

export const localSchema = {
  ...controllerSchema,
  nodeName: agentSchema.nodeName,
  cgroupRoot: agentSchema.cgroupRoot,
  cgroupVersion: agentSchema.cgroupVersion,
  procRoot: agentSchema.procRoot,
  reportInterval: agentSchema.reportInterval,
  agentMetricsPort: agentSchema.metricsPort,
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
  caFile: string;
  agent: RunningAgent;
  stop(): Promise<void>;
}

export async function startLocal(config: LocalConfig, log = createLogger({ level: config.logLevel, pretty: config.logFormat === 'pretty', name: 'nemutator' })): Promise<LocalMode> {
  const stateDir = resolve(config.stateDir);
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const adminTokenFile = join(stateDir, 'admin-token');
  const adminToken = readOrCreateToken(adminTokenFile);
  const agentToken = readOrCreateToken(join(stateDir, 'agent-token'));
  const controller = await startController(
    { ...config, stateDir },
    {
      log: log.child({ program: 'controller' }),
      mode: 'local',
      apiAuth: new StaticTokenAuthenticator(adminToken),
      authorizer: localAuthorizer,
      agentAuth: new SharedTokenAgentAuthenticator(agentToken),
      ...controllerFeatures(),
    },
  );
  let agent: RunningAgent;
  try {
    agent = await startAgent(
      {
        ...loadConfig(agentSchema, { program: 'agent', argv: [], env: {} }).config,
        nodeName: config.nodeName,
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
      { log: log.child({ program: 'agent' }), token: () => agentToken, ca: controller.tls.caPem },
    );
  } catch (e) {
    await controller.stop();
    throw e;
  }
  return {
    config,
    adminTokenFile,
    webhookUrl: controller.webhookUrl,
    apiUrl: controller.apiUrl,
    fleetUrl: controller.fleetUrl,
    caFile: join(stateDir, 'tls', 'ca.crt'),
    agent,
    async stop() {
      await agent.stop();
      await controller.shutdown();
    },
  };
}

function banner(m: LocalMode): string {
  const api = m.apiUrl.replace(/\/api\/v1$/, '');
  return [
    '',
    'Nemutator is running in local mode.',
    `  admission webhook  ${m.webhookUrl}   (CA: ${m.caFile})`,
    `  REST API           ${m.apiUrl}   (health: ${api}/healthz, ${api}/readyz)`,
    `  fleet hub          ${m.fleetUrl}   (agent for node ${m.config.nodeName} connected)`,
    ...(m.agent.metricsUrl ? [`  agent metrics      ${m.agent.metricsUrl}`] : []),
    `  admin token        ${m.adminTokenFile}`,
    '',
    'Try:',
    `  curl -s -H "Authorization: Bearer $(cat ${m.adminTokenFile})" ${m.apiUrl}/nodes`,
    `  npx nemutator nodes --state-dir ${m.config.stateDir}`,
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
