/** The agent on a node (the DaemonSet's entry point). */
import { help, loadConfig } from '#common/config.js';
import { ErrorCodes, isNemuError } from '#common/errors.js';
import { createLogger } from '#common/log.js';

import { startAgent } from './app.ts';
import { agentSchema } from './config.ts';

async function main(): Promise<void> {
  const { config, help: wantHelp } = loadConfig(agentSchema, { program: 'nemutator-agent' });
  if (wantHelp) {
    console.log(help(agentSchema, 'nemutator-agent'));
    return;
  }
  const log = createLogger({ level: config.logLevel, pretty: config.logFormat === 'pretty', name: 'nemutator-agent' });
  const agent = await startAgent(config, { log });
  log.info({ node: config.nodeName, controller: config.controllerUrl, metrics: agent.metricsUrl }, 'agent started');
  const stop = () => void agent.stop().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((e: unknown) => {
  console.error(isNemuError(e) ? `${e.code}: ${e.message}` : e);
  process.exit(isNemuError(e) && e.code === ErrorCodes.CONFIG ? 2 : 1);
});
