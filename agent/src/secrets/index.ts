/**
 * The secrets feature assembled: pod cache and JWKS from the API server, the service, the
 * unix-socket server and the fleet command handlers (rotate, secretStatus).
 */
import type { KubeApi } from '../kube/api.ts';
import type { JSONWebKeySet } from 'jose';
import type { Logger } from '../../../common/src/log.ts';
import type { ICommand, ICommandResult } from '../../../proto/codec.ts';
import type { AgentConfig } from '../config.ts';
import { AuditLog } from './audit.ts';
import type { NodePods } from '../kube/pods.ts';
import { jwksFetcher, podDirectory } from './pods.ts';
import { startSocketServer, type SocketServer } from './server.ts';
import { SecretsService } from './service.ts';
import { PodTokenVerifier } from './token.ts';
import { loadPeercred } from './peercred.ts';

export type SecretsConfig = Pick<
  AgentConfig,
  'nodeName' | 'procRoot' | 'socketPath' | 'socketMode' | 'vaultAddr' | 'vaultAuthMount' | 'vaultAudience' | 'vaultTimeout' | 'rotationInterval' | 'maxStaleness' | 'secretsRateLimit' | 'jwksUrl'
>;

export interface SecretsDeps {
  log: Logger;
  /** The API server (JWKS) and the agent's informer of this node's pods. */
  kube: KubeApi;
  pods: Pick<NodePods, 'get'>;
  /** Overrides the JWKS source (default: jwksUrl or the API server's /openid/v1/jwks). */
  fetchJwks?: () => Promise<JSONWebKeySet>;
}

type Handler = (command: ICommand) => Promise<Omit<ICommandResult, 'requestId'>>;

export interface RunningSecrets {
  service: SecretsService;
  server: SocketServer;
  handlers: { rotate: Handler; secretStatus: Handler };
  stop(): Promise<void>;
}

export async function startSecrets(config: SecretsConfig, deps: SecretsDeps): Promise<RunningSecrets> {
  loadPeercred(); // fail at start-up, not on the first call, when the addon is missing
  const kc = deps.kube;
  const pods = podDirectory(deps.pods);
  const service = new SecretsService({
    nodeName: config.nodeName,
    pods,
    verifier: new PodTokenVerifier({ fetchJwks: deps.fetchJwks ?? jwksFetcher(kc, config.jwksUrl) }),
    vault: { addr: config.vaultAddr, authMount: config.vaultAuthMount, timeoutMs: config.vaultTimeout },
    defaultAudience: config.vaultAudience,
    maxStalenessMs: config.maxStaleness,
    rotationIntervalMs: config.rotationInterval,
    audit: new AuditLog(deps.log.child({ component: 'secrets-audit' })),
  });
  const server = await startSocketServer({
    path: config.socketPath,
    mode: Number.parseInt(config.socketMode, 8),
    procRoot: config.procRoot,
    service,
    log: deps.log.child({ component: 'secrets' }),
    rateLimit: config.secretsRateLimit,
  });
  service.start();
  return {
    service,
    server,
    handlers: {
      async rotate(command) {
        const r = await service.rotate(command.rotate?.path || undefined);
        return { rotate: { pathsChecked: r.pathsChecked, newVersions: r.newVersions, watchersNotified: r.watchersNotified } };
      },
      async secretStatus(command) {
        return { secretStatus: { holders: service.status(command.secretStatus?.path || undefined) } };
      },
    },
    async stop() {
      await server.stop();
      await service.stop();
      await pods.stop();
    },
  };
}
