/**
 * The secrets feature assembled: pod cache and JWKS from the API server (or, in local mode,
 * local mode's pod registry and token issuer), the source of values (Vault, or the embedded
 * store), the service, the unix-socket server and the fleet command handlers (rotate, secretStatus).
 */
import type { JSONWebKeySet } from 'jose';
import { Counter, Registry } from 'prom-client';

import { ErrorCodes, NemuError } from '#common/errors.js';
import type { Logger } from '#common/log.js';
import type { ICommand, ICommandResult } from '#proto/codec.js';

import type { AgentConfig } from '../config.ts';
import type { KubeApi } from '../kube/api.ts';
import type { NodePods } from '../kube/pods.ts';
import { AuditLog } from './audit.ts';
import { loadPeercred } from './peercred.ts';
import { jwksFetcher, podDirectory } from './pods.ts';
import { type SocketServer, startSocketServer } from './server.ts';
import { SecretsService } from './service.ts';
import { type SecretSource, vaultSource } from './source.ts';
import { PodTokenVerifier } from './token.ts';

export type SecretsConfig = Pick<
  AgentConfig,
  | 'nodeName'
  | 'procRoot'
  | 'socketPath'
  | 'socketMode'
  | 'vaultAddr'
  | 'vaultAuthMount'
  | 'vaultAudience'
  | 'vaultTimeout'
  | 'rotationInterval'
  | 'maxStaleness'
  | 'secretsRateLimit'
  | 'jwksUrl'
>;

export interface SecretsDeps {
  log: Logger;
  /** The API server (JWKS); not needed when fetchJwks is given. */
  kube?: KubeApi;
  /** The agent's informer of this node's pods (local mode: its registry of local pods). */
  pods: Pick<NodePods, 'get'>;
  /** Where values come from; default: Vault at vaultAddr, logged in as each pod. */
  source?: SecretSource;
  /** Overrides the JWKS source (default: jwksUrl or the API server's /openid/v1/jwks). */
  fetchJwks?: () => Promise<JSONWebKeySet>;
  /** Where the secrets counters go (the agent's registry, appended to its /metrics); default: a registry of their own. */
  registry?: Registry;
}

type Handler = (command: ICommand) => Promise<Omit<ICommandResult, 'requestId'>>;

export interface RunningSecrets {
  service: SecretsService;
  server: SocketServer;
  handlers: { rotate: Handler; secretStatus: Handler };
  /** The registry holding nemutator_agent_secrets_rotation_errors_total. */
  registry: Registry;
  stop(): Promise<void>;
}

export async function startSecrets(config: SecretsConfig, deps: SecretsDeps): Promise<RunningSecrets> {
  loadPeercred(); // fail at start-up, not on the first call, when the addon is missing
  const fetchJwks = deps.fetchJwks ?? (deps.kube ? jwksFetcher(deps.kube, config.jwksUrl) : undefined);
  if (!fetchJwks)
    throw new NemuError(ErrorCodes.CONFIG, 'the secrets socket needs the JWKS that signs pod tokens: give it an API server (--kubeconfig) or a jwksUrl');
  const pods = podDirectory(deps.pods);
  const registry = deps.registry ?? new Registry();
  const rotationErrors = new Counter({
    name: 'nemutator_agent_secrets_rotation_errors_total',
    help: 'Rotation checks that failed (Vault unreachable, access revoked), by error code; the cached version ages until Vault answers.',
    labelNames: ['code'],
    registers: [registry],
  });
  const service = new SecretsService({
    nodeName: config.nodeName,
    pods,
    verifier: new PodTokenVerifier({ fetchJwks }),
    source: deps.source ?? vaultSource({ addr: config.vaultAddr, authMount: config.vaultAuthMount, timeoutMs: config.vaultTimeout }),
    defaultAudience: config.vaultAudience,
    maxStalenessMs: config.maxStaleness,
    rotationIntervalMs: config.rotationInterval,
    audit: new AuditLog(deps.log.child({ component: 'secrets-audit' })),
    log: deps.log.child({ component: 'secrets-rotation' }),
    countRotationError: (code) => rotationErrors.inc({ code }),
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
    registry,
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
