/**
 * The controller, assembled: store, certificates, admission webhook, REST API and fleet hub.
 * `main.ts` (in a cluster) and `local/src/main.ts` (npm start) only choose the configuration and
 * the authenticators, then call `startController`.
 */
import type { Server } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Counter, Gauge } from 'prom-client';

import { ErrorCodes } from '#common/errors.js';
import type { Logger } from '#common/log.js';
import { VERSION } from '#common/version.js';

import { type AdmissionHandler, passThroughHandler } from './admission/handler.ts';
import { AuditLog } from './audit/log.ts';
import { registerAuditRoutes } from './audit/routes.ts';
import type { CertificateBundle, ServingIdentity } from './certs/authority.ts';
import { LocalTlsSource, MountedTlsSource, type TlsSource } from './certs/sources.ts';
import type { ControllerConfig } from './config.ts';
import type { AgentAuthenticator } from './fleet/auth.ts';
import { FleetHub } from './fleet/hub.ts';
import { FleetRegistry } from './fleet/registry.ts';
import { type ControllerMetrics, createControllerMetrics } from './metrics.ts';
import { redisTargetOf } from './redis/target.ts';
import { SchedulerExtender } from './scheduler/extender.ts';
import { createExtenderServer, EXTENDER_PREFIX, type ExtenderServer } from './scheduler/extender-server.ts';
import { clientCaFor, clientNames, extenderSettings } from './scheduler/extender-setup.ts';
import type { Authorizer } from './server/access.ts';
import { createApiServer } from './server/api.ts';
import { applyHttp1Limits, closeGracefully, type ConnectionLimits, serverOptions } from './server/connections.ts';
import { type MetricsGuard, metricsGuard } from './server/metrics-guard.ts';
import { type Authenticator, NemuError, Router } from './server/router.ts';
import { createWebhookServer, type WebhookServer } from './server/webhook.ts';
import { StoreHealth } from './store/health.ts';
import { LevelStore } from './store/level.ts';
import { RedisStore } from './store/redis.ts';
import type { Store } from './store/store.ts';

export interface ControllerDeps {
  log: Logger;
  /** Who may call the REST API. */
  apiAuth: Authenticator;
  /** What each REST caller may do (SubjectAccessReview in a cluster, the admin token locally). */
  authorizer: Authorizer;
  /** Who may speak for a node on the fleet link. */
  agentAuth: AgentAuthenticator;
  mode: 'local' | 'cluster';
  /** Builds the admission handler once the store exists; default admits everything unchanged. */
  admission?: (parts: ControllerParts) => Promise<AdmissionHandler> | AdmissionHandler;
  /** Adds REST routes once the parts exist. */
  routes?: (router: Router, parts: ControllerParts) => void;
  /** Where the serving certificate comes from; default: mounted files or the state directory. */
  tls?: TlsSource;
  /** Whether this replica does singleton work (background loops); default: always (one replica, local mode). */
  isLeader?: () => boolean;
}

/** What the controller's features are built from. */
export interface ControllerParts {
  config: ControllerConfig;
  log: Logger;
  store: Store;
  /** Whether the store takes the mutation log's writes: `/readyz` and status read it. */
  storeHealth: StoreHealth;
  metrics: ControllerMetrics;
  registry: FleetRegistry;
  hub: FleetHub;
  tls: CertificateBundle;
  /** Who did what through the REST API. */
  audit: AuditLog;
  /** The kube-scheduler extender; features give it the cluster's objects, telemetry and neighbour scores. */
  scheduler: SchedulerExtender;
  /** Singleton work (resize loops, continuous profiling, caBundle) runs only while this is true. */
  isLeader: () => boolean;
  /** Registers work to do on shutdown; it runs after the servers stop taking requests, before the store closes. */
  onStop(cleanup: () => Promise<void> | void): void;
}

export interface RunningController extends ControllerParts {
  webhookUrl: string;
  apiUrl: string;
  fleetUrl: string;
  /** The extender's urlPrefix (…/scheduler/v1); undefined when it is off. */
  schedulerUrl: string | undefined;
  /** Every REST route with the permission it declares (docs/security.md lists the same). */
  routes: ReturnType<Router['list']>;
  /** Stops at once: the servers stop listening, requests in flight get shutdownTimeout to finish, then everything closes. */
  stop(): Promise<void>;
  /**
   * SIGTERM: keeps serving for shutdownDrain with /readyz answering 503 (the endpoint is
   * removed meanwhile), then stop().
   */
  shutdown(): Promise<void>;
}

function listen(server: Server | HttpsServer | WebhookServer['server'], port: number, host: string, what: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException) => {
      const hint = e.code === 'EADDRINUSE' ? `port ${port} on ${host} is in use; choose another with the ${what} port flag` : e.message;
      reject(new NemuError(ErrorCodes.CONFIG, `cannot start the ${what} server: ${hint}`));
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/** Redis when replicas must share the store, else the embedded one in the state directory. */
async function openStore(config: ControllerConfig): Promise<Store> {
  const target = redisTargetOf(config);
  const redis = config.store === 'redis' || (config.store === 'auto' && target !== undefined);
  if (!redis) {
    if (config.redisWaitReplicas > 0)
      throw new NemuError(
        ErrorCodes.CONFIG,
        'redisWaitReplicas is set but the store is not in Redis: set redisUrl or redisSentinels (and store redis or auto), or unset redisWaitReplicas',
      );
    return LevelStore.open(join(config.stateDir, 'store'));
  }
  if (!target)
    throw new NemuError(
      ErrorCodes.CONFIG,
      'store is redis but neither redisUrl nor redisSentinels is set; set --redis-url, or --redis-sentinels with --redis-master-name, or use --store embedded',
    );
  return RedisStore.open(target, `${config.redisKeyPrefix}nemutator:store:`, {
    waitReplicas: config.redisWaitReplicas,
    waitTimeoutMs: config.redisWaitTimeout,
  });
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

/** Plain HTTP only for local mode on loopback; anywhere else the REST API speaks TLS. */
export function apiUsesTls(mode: 'local' | 'cluster', host: string): boolean {
  return mode === 'cluster' || !isLoopback(host);
}

function urlHost(host: string): string {
  if (host === '0.0.0.0' || host === '::') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}

/** The names the serving certificate must carry: the Service's DNS names and loopback. */
export function servingIdentity(config: ControllerConfig): ServingIdentity {
  const svc = config.serviceName;
  const ns = config.namespace;
  const extra = config.tlsDnsNames
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  return { dnsNames: [svc, `${svc}.${ns}`, `${svc}.${ns}.svc`, `${svc}.${ns}.svc.cluster.local`, 'localhost', ...extra], ips: ['127.0.0.1', '::1'] };
}

/** Mounted files when given, else a self-managed CA in the state directory. */
function defaultTlsSource(config: ControllerConfig, log: Logger): TlsSource {
  if (config.tlsCertFile || config.tlsKeyFile) {
    if (!config.tlsCertFile || !config.tlsKeyFile) {
      throw new NemuError(
        ErrorCodes.CONFIG,
        'tlsCertFile and tlsKeyFile go together: set both to use a mounted certificate, or neither to let the controller issue one',
      );
    }
    return new MountedTlsSource(config.tlsCertFile, config.tlsKeyFile, config.tlsCaFile || undefined, log);
  }
  return new LocalTlsSource(join(config.stateDir, 'tls'), servingIdentity(config), log);
}

/** Work to undo when the controller stops: newest first, and once (a second stop finds nothing). */
class Cleanups {
  private readonly list: Array<() => Promise<void> | void> = [];
  constructor(private readonly log: Logger) {}
  push(cleanup: () => Promise<void> | void): void {
    this.list.push(cleanup);
  }
  async run(): Promise<void> {
    for (const c of this.list.splice(0).reverse()) {
      try {
        await c();
      } catch (e) {
        this.log.warn({ err: e }, 'error while stopping');
      }
    }
  }
}

function connectionLimits(config: ControllerConfig): ConnectionLimits {
  return {
    idleTimeoutMs: config.idleTimeout,
    headersTimeoutMs: config.headersTimeout,
    requestTimeoutMs: config.requestTimeout,
    maxConnections: config.maxConnections,
    maxHeaderBytes: config.maxHeaderBytes,
  };
}

/** The fleet hub on its own TLS port, so agents and the apiserver never share a listener. */
function createFleet(
  config: ControllerConfig,
  deps: ControllerDeps,
  tls: CertificateBundle,
  metrics: ControllerMetrics,
  registry: FleetRegistry,
  cleanups: Cleanups,
) {
  const connections = connectionLimits(config);
  const fleetServer = createHttpsServer({ cert: tls.certPem, key: tls.keyPem, minVersion: 'TLSv1.2', ...serverOptions(connections) });
  applyHttp1Limits(fleetServer, connections, { upgrades: true });
  const reportsTotal = new Counter({ name: 'nemutator_fleet_reports_total', help: 'NodeReports received from agents.', registers: [metrics.registry] });
  new Gauge({
    name: 'nemutator_fleet_nodes',
    help: 'Nodes known to the fleet registry, by state (connected, stale, disconnected).',
    labelNames: ['state'],
    registers: [metrics.registry],
    collect() {
      const counts = { connected: 0, stale: 0, disconnected: 0 };
      for (const n of registry.list()) counts[!n.connected ? 'disconnected' : n.stale ? 'stale' : 'connected']++;
      for (const [state, v] of Object.entries(counts)) this.set({ state }, v);
    },
  });
  const hub = new FleetHub({
    server: fleetServer,
    auth: deps.agentAuth,
    registry,
    log: deps.log.child({ component: 'fleet' }),
    version: VERSION,
    maxFrameBytes: config.fleetMaxFrameBytes,
    upgradeTimeoutMs: config.fleetUpgradeTimeout,
    onReport: () => reportsTotal.inc(),
  });
  // Cleanups run in reverse: the hub says goodbye to agents before the server goes.
  cleanups.push(() => closeGracefully(fleetServer, 0));
  cleanups.push(() => hub.close());
  return { fleetServer, hub };
}

/** The audit log, pruned hourly of records older than auditMaxAge. */
function createAudit(config: ControllerConfig, store: Store, log: Logger, cleanups: Cleanups): AuditLog {
  const audit = new AuditLog(store, log.child({ component: 'audit' }), { maxAgeMs: config.auditMaxAge });
  const pruneAudit = setInterval(() => void audit.prune().catch((e: Error) => log.warn({ err: e.message }, 'audit pruning failed')), 3600_000);
  pruneAudit.unref();
  cleanups.push(() => clearInterval(pruneAudit));
  return audit;
}

/** The extender on its own mTLS port; undefined when it is off or there is no client CA to trust. */
function createSchedulerServer(config: ControllerConfig, parts: ControllerParts, cleanups: Cleanups): ExtenderServer | undefined {
  if (!config.schedulerExtender) return undefined;
  // A schedulerClientCaFile is read once; the controller's own CA follows its renewals.
  const fileCa = config.schedulerClientCaFile ? clientCaFor(config, '') : undefined;
  if (!(fileCa ?? parts.tls.caPem)) {
    parts.log.warn('scheduler extender off: no CA to check client certificates against; set schedulerClientCaFile (or tlsCaFile)');
    return undefined;
  }
  const server = createExtenderServer({
    extender: parts.scheduler,
    cert: parts.tls.certPem,
    key: parts.tls.keyPem,
    clientCa: () => fileCa ?? parts.tls.caPem,
    clientNames: clientNames(config),
    maxBodyBytes: config.schedulerMaxBodyBytes,
    maxDepth: config.maxReviewDepth,
    connections: connectionLimits(config),
    registry: parts.metrics.registry,
    log: parts.log.child({ component: 'scheduler' }),
  });
  cleanups.push(() => closeGracefully(server.server, config.shutdownTimeout));
  return server;
}

/** Whether this replica takes traffic: listening, not draining; the store's health is said apart. */
interface Lifecycle {
  listening: boolean;
  draining: boolean;
  ready(): boolean;
}

function createWebhook(
  config: ControllerConfig,
  parts: ControllerParts,
  admission: AdmissionHandler,
  life: Lifecycle,
  cleanups: Cleanups,
  guard: MetricsGuard,
): WebhookServer {
  const webhook = createWebhookServer({
    metricsGuard: guard,
    cert: parts.tls.certPem,
    key: parts.tls.keyPem,
    handler: admission,
    registry: parts.metrics.registry,
    log: parts.log.child({ component: 'webhook' }),
    // the Deployment's readinessProbe asks the webhook port
    ready: () => life.ready() && !parts.storeHealth.failing,
    maxBodyBytes: config.maxReviewBytes,
    maxDepth: config.maxReviewDepth,
    maxInFlight: config.maxReviewsInFlight,
    maxBytesInFlight: config.maxReviewBytesInFlight,
    connections: connectionLimits(config),
  });
  // Reviews in flight are answered before the mutation log is flushed (onStop cleanups run after this).
  cleanups.push(() => webhook.close(config.shutdownTimeout));
  return webhook;
}

/** Health, status and the fleet's nodes: the routes of the controller itself. */
function coreRoutes(router: Router, parts: ControllerParts, life: Lifecycle, mode: ControllerDeps['mode']): void {
  const { storeHealth, hub, registry } = parts;
  router.get('/healthz', 'public', () => ({ status: 'ok' }));
  // Not ready while the mutation log cannot be written: the apiserver's reviews should go to a
  // replica that can log (this one admits them unmutated meanwhile).
  router.get('/readyz', 'public', () => {
    if (!life.ready()) return { status: 503, body: { status: 'not ready' } };
    if (storeHealth.failing) return { status: 503, body: { status: 'not ready', store: storeHealth.describe() } };
    return { status: 'ready' };
  });
  router.get('/api/v1/status', { verb: 'get', resource: 'status', scope: 'cluster' }, () => ({
    status: life.draining ? 'draining' : !life.ready() ? 'starting' : storeHealth.failing ? 'degraded' : 'ready',
    version: VERSION,
    mode,
    components: {
      webhook: 'serving',
      store: storeHealth.describe(),
      fleet: `${hub.connectedNodes.length} agent(s) connected`,
      certificate: `valid until ${parts.tls.notAfter.toISOString()}`,
    },
  }));
  router.get('/api/v1/nodes', { verb: 'list', resource: 'nodes', scope: 'cluster' }, () => ({ items: registry.list() }));
  router.get('/api/v1/nodes/{name}', { verb: 'get', resource: 'nodes', scope: 'cluster' }, (req) => {
    const e = registry.get(req.params.name!);
    if (!e) throw new NemuError(ErrorCodes.NOT_FOUND, `node ${req.params.name} has never connected; 'nemutator nodes' lists the known nodes`, { status: 404 });
    return { ...registry.summary(e), capabilities: e.capabilities, connectedAt: new Date(e.connectedAt).toISOString(), report: e.report ?? null };
  });
  registerAuditRoutes(router, parts.audit);
}

function createApi(config: ControllerConfig, deps: ControllerDeps, parts: ControllerParts, router: Router, cleanups: Cleanups) {
  const tls = apiUsesTls(deps.mode, config.host);
  const api = createApiServer({
    router,
    auth: deps.apiAuth,
    authorizer: deps.authorizer,
    audit: parts.audit,
    metrics: parts.metrics.registry,
    log: deps.log.child({ component: 'api' }),
    maxBodyBytes: config.apiMaxBodyBytes,
    rateLimit: { rate: config.apiRateLimit, burst: config.apiRateBurst },
    maxBodyDepth: config.maxReviewDepth,
    connections: connectionLimits(config),
    ...(tls ? { tls: { cert: parts.tls.certPem, key: parts.tls.keyPem } } : {}),
  });
  cleanups.push(() => closeGracefully(api.server, config.shutdownTimeout));
  return { api, tls };
}

/** On SIGTERM: keep serving `shutdownDrain` with /readyz at 503 while the endpoint goes, then stop. */
async function shutdown(config: ControllerConfig, log: Logger, life: Lifecycle, webhook: WebhookServer, cleanups: Cleanups): Promise<void> {
  if (!life.draining && config.shutdownDrain > 0) {
    life.draining = true;
    log.info({ drainMs: config.shutdownDrain }, 'shutting down: /readyz answers 503 while the endpoint is removed; still serving');
    // A real wait: kube-proxy and the apiserver learn of the endpoint's removal on their own schedule.
    await new Promise((r) => setTimeout(r, config.shutdownDrain));
  }
  life.draining = true;
  log.info({ reviewsInFlight: webhook.reviewsInFlight }, 'shutting down: no new connections; finishing requests in flight');
  await cleanups.run();
}

function swapCertificate(
  fresh: ControllerParts['tls'],
  parts: ControllerParts,
  servers: Array<{ setCertificate(certPem: string, keyPem: string): void }>,
  fleetServer: { setSecureContext(o: { cert: string; key: string }): void },
): void {
  parts.tls = fresh;
  for (const s of servers) s.setCertificate(fresh.certPem, fresh.keyPem);
  fleetServer.setSecureContext({ cert: fresh.certPem, key: fresh.keyPem });
  parts.log.info({ notAfter: fresh.notAfter.toISOString() }, 'serving certificate replaced without a restart');
}

export async function startController(config: ControllerConfig, deps: ControllerDeps): Promise<RunningController> {
  const { log } = deps;
  const cleanups = new Cleanups(log);
  try {
    const store = await openStore(config);
    cleanups.push(() => store.close());
    const tlsSource = deps.tls ?? defaultTlsSource(config, log.child({ component: 'tls' }));
    const tls = await tlsSource.load();
    cleanups.push(() => tlsSource.stop());
    const metrics = createControllerMetrics(config.metricsDefaults);
    const registry = new FleetRegistry(config.nodeStaleAfter);
    const { fleetServer, hub } = createFleet(config, deps, tls, metrics, registry, cleanups);
    const audit = createAudit(config, store, log, cleanups);
    const parts: ControllerParts = {
      config,
      log,
      store,
      storeHealth: new StoreHealth(),
      metrics,
      registry,
      hub,
      tls,
      audit,
      scheduler: new SchedulerExtender({ registry, settings: extenderSettings(config) }),
      isLeader: deps.isLeader ?? (() => true),
      onStop: (c) => cleanups.push(c),
    };
    const admission = deps.admission ? await deps.admission(parts) : passThroughHandler(log);

    const life: Lifecycle = { listening: false, draining: false, ready: () => life.listening && !life.draining };
    const webhook = createWebhook(config, parts, admission, life, cleanups, metricsGuard(deps.apiAuth, deps.authorizer));
    const router = new Router();
    coreRoutes(router, parts, life, deps.mode);
    deps.routes?.(router, parts);
    const { api, tls: apiTls } = createApi(config, deps, parts, router, cleanups);
    const scheduler = createSchedulerServer(config, parts, cleanups);

    const webhookPort = await listen(webhook.server, config.webhookPort, config.host, 'webhook (--webhook-port)');
    const fleetPort = await listen(fleetServer, config.fleetPort, config.host, 'fleet (--fleet-port)');
    const apiPort = await listen(api.server, config.apiPort, config.host, 'API (--api-port)');
    const schedulerPort = scheduler ? await listen(scheduler.server, config.schedulerPort, config.host, 'scheduler extender (--scheduler-port)') : undefined;
    life.listening = true;

    // Renewed or reloaded certificates are swapped into the running servers.
    tlsSource.start((fresh) => swapCertificate(fresh, parts, scheduler ? [webhook, api, scheduler] : [webhook, api], fleetServer));

    const host = urlHost(config.host);
    return {
      ...parts,
      get tls() {
        return parts.tls;
      },
      webhookUrl: `https://${host}:${webhookPort}/mutate`,
      apiUrl: `${apiTls ? 'https' : 'http'}://${host}:${apiPort}/api/v1`,
      fleetUrl: `wss://${host}:${fleetPort}/fleet`,
      schedulerUrl: schedulerPort === undefined ? undefined : `https://${host}:${schedulerPort}${EXTENDER_PREFIX.replace(/\/$/, '')}`,
      routes: router.list(),
      stop: () => cleanups.run(),
      shutdown: () => shutdown(config, log, life, webhook, cleanups),
    };
  } catch (e) {
    await cleanups.run();
    throw e;
  }
}
