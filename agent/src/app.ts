/**
 * The agent, assembled: the report collector, the fleet link to the controller, and the
 * agent's own /metrics (guarded by TokenReview + SubjectAccessReview in a cluster). `main.ts` (DaemonSet) and the controller's local mode call
 * `startAgent` with the token and CA they have.
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';

import { ErrorCodes, NemuError } from '#common/errors.js';
import type { Logger } from '#common/log.js';
import { VERSION } from '#common/version.js';
import type { INodeReport } from '#proto/codec.js';
import type { ICommand, ICommandResult } from '#proto/codec.js';

import type { AgentConfig } from './config.ts';
import type { CsiServer } from './csi/server.ts';
import { type CommandHandler, FleetClient } from './fleet/client.ts';
import { KubeApi } from './kube/api.ts';
import { NodePods } from './kube/pods.ts';
import { kubeReviews, MetricsAccess, type MetricsAuthPlan, planMetricsAuth } from './metrics/access.ts';
import { type MetricsEndpoint, metricsRequestListener } from './metrics/server.ts';
import { type PodNames, ReportCollector } from './report.ts';
import type { RunningSecrets, SecretsDeps } from './secrets/index.ts';

export type CommandKind = 'profile' | 'rotate' | 'secretStatus';
export type CommandHandlers = Partial<Record<CommandKind, (command: ICommand) => Promise<Omit<ICommandResult, 'requestId'>>>>;

/** Routes a Command to the handler of its kind; unknown kinds get a clear error result. */
export function commandRouter(handlers: CommandHandlers): CommandHandler {
  return async (command) => {
    if (command.kind === 'echo' || command.echo) return { echo: { text: command.echo?.text ?? '' } };
    const kind = (command.kind ?? '') as CommandKind;
    const handler = handlers[kind];
    if (!handler) {
      throw new NemuError(
        ErrorCodes.BAD_REQUEST,
        `this agent does not handle ${kind || 'unknown'} commands (version ${VERSION}); upgrade it or enable the feature`,
        { status: 501 },
      );
    }
    return handler(command);
  };
}

export interface AgentDeps {
  log: Logger;
  /** The token presented to the controller; default: read `tokenFile` on every connect. */
  token?: () => string | Promise<string>;
  /** PEM of the controller's CA; default: read `caFile`. */
  ca?: string;
  podNames?: PodNames;
  /** Handlers for the controller's commands, by kind (profile, rotate, secretStatus); echo is built in. */
  handlers?: CommandHandlers;
  /** Serve /metrics (false when the controller runs the agent in-process and the port is not wanted). */
  metrics?: boolean;
  /**
   * Serve the secrets socket without an API server (local mode): the pods it may serve, the
   * keys that sign their tokens, and where values come from.
   */
  secrets?: Pick<SecretsDeps, 'pods' | 'fetchJwks' | 'source'>;
}

export interface RunningAgent {
  client: FleetClient;
  /** The secrets socket, when vaultAddr is set (local mode: always). */
  secrets?: RunningSecrets;
  /** The CSI node plugin, when csiSocket is set. */
  csi?: CsiServer;
  /** The pods of this node from the API server (undefined without a cluster). */
  pods?: NodePods;
  collector: ReportCollector;
  metricsUrl?: string;
  lastReport(): INodeReport | undefined;
  stop(): Promise<void>;
}

function readFileOrFail(path: string, key: string, what: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (e) {
    throw new NemuError(
      ErrorCodes.CONFIG,
      `cannot read ${what} from ${key} = ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}; mount it or set ${key}`,
    );
  }
}

/**
 * What stop() undoes, added as each part starts and run in the reverse order (the last part
 * started stops first). The steps run once: a second stop() waits for the first one.
 */
export class StopSteps {
  private readonly steps: Array<() => unknown> = [];
  private stopped: Promise<void> | undefined;

  add(step: () => unknown): void {
    this.steps.push(step);
  }

  run(): Promise<void> {
    // a copy: reversing the list itself would turn the order around for the next caller
    this.stopped ??= (async () => {
      for (const step of [...this.steps].reverse()) await step();
    })();
    return this.stopped;
  }
}

/**
 * Starts every part of the agent. A part that fails to start stops the ones started before
 * it (in reverse order) before the error is thrown: nothing keeps listening or watching.
 */
export async function startAgent(config: AgentConfig, deps: AgentDeps): Promise<RunningAgent> {
  const stops = new StopSteps();
  try {
    return await startParts(config, deps, stops);
  } catch (e) {
    await stops.run().catch((err: unknown) => deps.log.warn({ err: String(err) }, 'stopping the parts started before a failed start failed too'));
    throw e;
  }
}

async function startParts(config: AgentConfig, deps: AgentDeps, stops: StopSteps): Promise<RunningAgent> {
  const { log } = deps;
  // In a cluster the agent knows the pods of its node, to name them (and to check secrets).
  const kc = deps.podNames ? undefined : KubeApi.load(config.kubeconfig);
  const metricsAuth = planAgentMetrics(config, deps, kc);
  const { reviewKube } = metricsAuth;
  if (reviewKube) stops.add(() => reviewKube.close());
  const link = controllerLink(config, deps);
  const pods = kc ? new NodePods(kc, config.nodeName, log.child({ component: 'pods' })) : undefined;
  if (pods) {
    await pods.start();
    stops.add(() => pods.stop());
  }
  const collector = reportCollector(config, deps.podNames ?? pods?.names, log);
  let last: INodeReport | undefined;
  const collect = async () => (last = await collector.collect());
  const stopping = new AbortController();
  const handlers: CommandHandlers = { profile: profileHandler(config, log, stopping.signal, () => last), ...deps.handlers };
  // The agent's own counters (secrets, CSI), appended to /metrics after the report's families.
  const registry = new Registry();
  const secrets = await startAgentSecrets(config, deps, { kc, pods, registry });
  if (secrets) {
    stops.add(() => secrets.stop());
    handlers.rotate ??= secrets.handlers.rotate;
    handlers.secretStatus ??= secrets.handlers.secretStatus;
  }
  const csi = await startCsi(config, log, registry);
  if (csi) stops.add(() => csi.stop());
  const client = fleetClient(config, link, handlers, collect, log);
  let metricsUrl: string | undefined;
  if (metricsAuth.plan) {
    const served = await serveMetrics(
      config,
      metricsAuth,
      { report: () => (last ? Promise.resolve(last) : collect()), health: () => ({ link: client.state }), own: () => ownMetrics(registry) },
      log,
    );
    stops.add(() => new Promise<void>((r) => served.server.close(() => r())));
    metricsUrl = served.url;
  }
  stops.add(() => client.stop());
  stops.add(() => stopping.abort());
  client.start();
  return {
    client,
    collector,
    ...(pods ? { pods } : {}),
    ...(secrets ? { secrets } : {}),
    ...(csi ? { csi } : {}),
    ...(metricsUrl ? { metricsUrl } : {}),
    lastReport: () => last,
    stop: () => stops.run(),
  };
}

/** Usage of the node and its pods from cgroups and /proc, named with the pods' names when known. */
function reportCollector(config: AgentConfig, podNames: PodNames | undefined, log: Logger): ReportCollector {
  return new ReportCollector({
    nodeName: config.nodeName,
    cgroupRoot: config.cgroupRoot,
    procRoot: config.procRoot,
    cgroupVersion: config.cgroupVersion,
    ...(podNames ? { podNames } : {}),
    log: log.child({ component: 'metrics' }),
  });
}

interface AgentMetricsAuth {
  plan?: MetricsAuthPlan;
  /** Who reviews the callers' tokens (metricsAuth kube). */
  reviewApi?: KubeApi;
  /** The reviews' own KubeApi, when the pods' one was not made (podNames given): closed on stop. */
  reviewKube?: KubeApi;
}

/**
 * /metrics names every pod of the node, so it is guarded like the kubelet's (metrics/access.ts);
 * decided before anything starts, so a configuration that would expose it stops the agent here.
 */
function planAgentMetrics(config: AgentConfig, deps: AgentDeps, kc: KubeApi | undefined): AgentMetricsAuth {
  if (!(deps.metrics ?? true)) return {};
  let reviewKube: KubeApi | undefined;
  const reviewApi = config.metricsAuth !== 'none' ? (kc ?? (reviewKube = KubeApi.load(config.kubeconfig))) : undefined;
  return { plan: planMetricsAuth(config, reviewApi !== undefined), ...(reviewApi ? { reviewApi } : {}), ...(reviewKube ? { reviewKube } : {}) };
}

/** The CA the agent pins for the controller and the token it presents. */
function controllerLink(config: AgentConfig, deps: AgentDeps): { ca: string; token: () => string | Promise<string> } {
  let ca = deps.ca;
  if (ca === undefined) {
    if (config.controllerUrl.startsWith('wss:') && !config.caFile) {
      throw new NemuError(
        ErrorCodes.CONFIG,
        "caFile is empty: the agent pins the controller's CA and uses no system CAs; set --ca-file (in a cluster: the nemutator-ca ConfigMap)",
      );
    }
    ca = config.caFile ? readFileOrFail(config.caFile, 'caFile', "the controller's CA") : '';
  }
  const token = deps.token ?? (() => readFileOrFail(config.tokenFile, 'tokenFile', 'the agent token'));
  return { ca, token };
}

/**
 * The profiler is always offered; a node without bpftrace answers with a diagnostic. Its code
 * (bpftrace, ELF and Go symbol tables: ~3 MiB of the agent's memory) is loaded with the first
 * capture asked for, as most nodes are never profiled.
 */
function profileHandler(config: AgentConfig, log: Logger, signal: AbortSignal, last: () => INodeReport | undefined): NonNullable<CommandHandlers['profile']> {
  let profiler: Promise<NonNullable<CommandHandlers['profile']>> | undefined;
  const load = async (): Promise<NonNullable<CommandHandlers['profile']>> => {
    const [{ createProfileHandler }, { CaptureQueue }] = await Promise.all([import('./profiler/handler.ts'), import('./profiler/queue.ts')]);
    return createProfileHandler({
      bpftracePath: config.bpftracePath,
      cgroupRoot: config.cgroupRoot,
      cgroupVersion: config.cgroupVersion,
      procRoot: config.procRoot,
      log: log.child({ component: 'profiler' }),
      queue: new CaptureQueue(config.profileQueue),
      signal,
      names: (uid) => {
        const pod = last()?.pods?.find((p) => p.uid === uid);
        return pod ? Object.fromEntries((pod.containers ?? []).map((c) => [c.id ?? '', c.name ?? ''])) : undefined;
      },
    });
  };
  return async (command) => {
    // A failed load is tried again by the next capture rather than remembered.
    profiler ??= load().catch((e: unknown) => {
      profiler = undefined;
      throw e;
    });
    return (await profiler)(command);
  };
}

/**
 * Secrets over the node socket (DESIGN: Agent, Secrets socket): in local mode from the pods
 * and keys it is given, in a cluster when a Vault is configured (checked with the API server).
 */
async function startAgentSecrets(
  config: AgentConfig,
  deps: AgentDeps,
  parts: { kc: KubeApi | undefined; pods: NodePods | undefined; registry: Registry },
): Promise<RunningSecrets | undefined> {
  const log = deps.log.child({ component: 'secrets' });
  const { registry } = parts;
  if (deps.secrets) {
    const { startSecrets } = await import('./secrets/index.ts');
    return startSecrets(config, { log, registry, ...deps.secrets });
  }
  if (!config.vaultAddr) return undefined;
  if (!parts.kc || !parts.pods)
    throw new NemuError(
      ErrorCodes.CONFIG,
      'vaultAddr is set but the agent has no API server to check pods and tokens with; set --kubeconfig or run in a cluster',
    );
  // Loaded only when used: Vault's client is the agent's largest dependency after the kube client.
  const { startSecrets } = await import('./secrets/index.ts');
  return startSecrets(config, { log, kube: parts.kc, pods: parts.pods, registry });
}

function fleetClient(
  config: AgentConfig,
  link: { ca: string; token: () => string | Promise<string> },
  handlers: CommandHandlers,
  collect: () => Promise<INodeReport>,
  log: Logger,
): FleetClient {
  return new FleetClient({
    url: config.controllerUrl,
    ca: link.ca,
    token: link.token,
    nodeName: config.nodeName,
    version: VERSION,
    capabilities: ['metrics', ...Object.keys(handlers)],
    log: log.child({ component: 'fleet' }),
    collect,
    reportIntervalMs: config.reportInterval,
    heartbeatMs: config.heartbeatInterval,
    reconnectMinMs: config.reconnectMin,
    reconnectMaxMs: config.reconnectMax,
    queueReports: config.sendQueueReports,
    maxFrameBytes: config.maxFrameBytes,
    onCommand: commandRouter(handlers),
  });
}

/** The agent's own counters; an empty registry prints a lone newline, nothing at all keeps the page as it was. */
async function ownMetrics(registry: Registry): Promise<string> {
  const text = await registry.metrics();
  return text.trim() === '' ? '' : text;
}

/** Serves /metrics (and /healthz) as planned; a port in use stops the agent with a CONFIG error. */
async function serveMetrics(config: AgentConfig, auth: AgentMetricsAuth, sources: MetricsEndpoint, log: Logger): Promise<{ server: Server; url: string }> {
  const { plan, reviewApi } = auth;
  if (plan?.mode === 'open' && plan.warning) log.warn(plan.warning);
  const access =
    plan?.mode === 'kube' && reviewApi
      ? new MetricsAccess({ nodeName: config.nodeName, reviews: kubeReviews(reviewApi), log: log.child({ component: 'metrics-auth' }) })
      : undefined;
  const server = createServer(metricsRequestListener(sources, access));
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(
        new NemuError(
          ErrorCodes.CONFIG,
          `cannot serve agent metrics on ${config.host}:${config.metricsPort}: ${e.code === 'EADDRINUSE' ? 'port in use; set --metrics-port' : e.message}`,
        ),
      ),
    );
    server.listen(config.metricsPort, config.host, () => resolve((server.address() as AddressInfo).port));
  });
  return { server, url: `http://${config.host === '0.0.0.0' ? '127.0.0.1' : config.host}:${port}/metrics` };
}

/**
 * The CSI node plugin, served by the agent itself rather than a companion process: one Node
 * process per node keeps the footprint small (bench/agent), and the plugin's only job is to
 * hand pods the directory of the socket this same process serves (docs/csi.md).
 */
async function startCsi(config: AgentConfig, log: Logger, registry: Registry): Promise<CsiServer | undefined> {
  if (!config.csiSocket) return undefined;
  const { startCsiServer } = await import('./csi/server.ts');
  return startCsiServer({
    socketPath: config.csiSocket,
    nodeName: config.nodeName,
    secretsSocketPath: config.socketPath,
    kubeletDir: config.csiKubeletDir,
    log: log.child({ component: 'csi' }),
    registry,
  });
}
