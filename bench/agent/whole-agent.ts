// The whole agent for the benchmark: the real program (agent/src/main.ts, transpiled) in a
// child process with the image's Node flags, dialing the fleet hub of a real controller that
// runs in the benchmark's process, over WSS with the controller's CA pinned and a shared
// token. Every report the controller receives is checked (all the fixture's pods and
// containers) and followed by a scrape of the agent's /metrics, as Prometheus would do it.
// Anything else (the agent exits, refuses to start, stops reporting, reports the wrong pods, a
// scrape fails) rejects `failed`: the benchmark must not measure an agent that does nothing.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import { mountsAt, readMountInfo } from '#agent/csi/mountinfo.js';
import { loadConfig } from '#common/config.js';
import { silentLogger } from '#common/log.js';
import { type RunningController, startController } from '#controller/app.js';
import { controllerSchema } from '#controller/config.js';
import { SharedTokenAgentAuthenticator } from '#controller/fleet/auth.js';
import { localAuthorizer } from '#controller/server/access.js';
import { generateToken, StaticTokenAuthenticator } from '#controller/server/auth.js';
import { encodeEnvelope, type INodeReport } from '#proto/codec.js';
import { type CsiClient, csiClient, kubeletPublish } from '#test/harness/kubelet.js';

const NODE_NAME = 'bench-node';

export interface WholeAgentOptions {
  /** agent/src/main.ts compiled to JavaScript. */
  entry: string;
  nodeFlags: string[];
  /** Environment of the agent's process (no NEMUTATOR_* or KUBERNETES_* of the caller's). */
  env: NodeJS.ProcessEnv;
  cgroupRoot: string;
  /** Token, CA, the controller's state and the (unused) secrets socket path go here. */
  dir: string;
  intervalMs: number;
  pods: number;
  containers: number;
}

export interface WholeAgentStats {
  /** Reports the controller received and checked. */
  reports: number;
  scrapes: number;
  /** collectMs of every report, in order. */
  collectMs: number[];
  frameBytes: number;
  metricsBytes: number;
  /** NodePublishVolume / NodeUnpublishVolume calls the kubelet-like client made, all answered OK. */
  csiPublishes: number;
  csiUnpublishes: number;
}

/** What the controller's REST API says about the node at the end. */
export interface NodeAtController {
  connected: boolean;
  stale: boolean;
  pods: number;
  containers: number;
  reports: number;
}

export interface WholeAgent {
  pid: number;
  /** Resolves once the controller has the agent's first report and it was scraped. */
  firstReport: Promise<void>;
  /** Rejects when the agent fails in any way; never resolves. */
  failed: Promise<never>;
  stats(): WholeAgentStats;
  /** Asks the controller's REST API for the node; rejects unless it is connected, fresh and has every pod. */
  checkAtController(): Promise<NodeAtController>;
  stop(): Promise<void>;
}

function containersOf(report: INodeReport | null | undefined): number {
  return (report?.pods ?? []).reduce((sum, p) => sum + (p.containers?.length ?? 0), 0);
}

export async function startWholeAgent(opts: WholeAgentOptions): Promise<WholeAgent> {
  const adminToken = generateToken();
  const agentToken = generateToken();
  const stateDir = join(opts.dir, 'controller');
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const { config } = loadConfig(controllerSchema, {
    program: 'bench/agent controller',
    argv: [],
    env: {},
    defaults: { host: '127.0.0.1', stateDir, webhookPort: 0, apiPort: 0, fleetPort: 0, schedulerPort: 0, metricsDefaults: false, logLevel: 'warn' },
  });
  const controller: RunningController = await startController(config, {
    log: silentLogger,
    mode: 'local',
    apiAuth: new StaticTokenAuthenticator(adminToken),
    authorizer: localAuthorizer,
    agentAuth: new SharedTokenAgentAuthenticator(agentToken),
  });

  const tokenFile = join(opts.dir, 'agent-token');
  const caFile = join(opts.dir, 'controller-ca.crt');
  await writeFile(tokenFile, `${agentToken}\n`, { mode: 0o600 });
  await writeFile(caFile, controller.tls.caPem);
  const args = [
    ...opts.nodeFlags,
    opts.entry,
    ['--node-name', NODE_NAME],
    ['--controller-url', controller.fleetUrl],
    ['--ca-file', caFile],
    ['--token-file', tokenFile],
    ['--cgroup-root', opts.cgroupRoot],
    ['--report-interval', `${opts.intervalMs}ms`],
    ['--host', '127.0.0.1'],
    ['--metrics-port', '0'],
    // No cluster and no Vault: no pod informer, no secrets socket (the path is never bound).
    ['--kubeconfig', ''],
    ['--vault-addr', ''],
    ['--socket-path', join(opts.dir, 'run', 'agent.sock')],
    // The CSI node plugin serves as in the DaemonSet; a kubelet-like client below uses it.
    ['--csi-socket', join(opts.dir, 'csi', 'csi.sock')],
    ['--csi-kubelet-dir', join(opts.dir, 'kubelet')],
    ['--log-level', 'info'],
    ['--log-format', 'json'],
  ].flat();
  const child: ChildProcess = spawn(process.execPath, args, { env: opts.env, stdio: ['ignore', 'pipe', 'inherit'] });

  let fail: (e: Error) => void = () => undefined;
  const failed = new Promise<never>((_, reject) => (fail = reject));
  failed.catch(() => undefined); // raced by the caller; a failure after the end is no one's business
  let stopping = false;
  child.once('exit', (code, signal) => {
    if (!stopping) fail(new Error(`the agent (main.js) exited with ${code ?? signal} during the benchmark; its log is above`));
  });

  let metricsUrl: string | undefined;
  const stats: WholeAgentStats = { reports: 0, scrapes: 0, collectMs: [], frameBytes: 0, metricsBytes: 0, csiPublishes: 0, csiUnpublishes: 0 };
  const kubelet = csiChurn(join(opts.dir, 'csi', 'csi.sock'), join(opts.dir, 'kubelet'), stats, (e) => fail(e));
  // The agent logs JSON (pino); its own warnings and errors are worth seeing, info is not.
  createInterface({ input: child.stdout! }).on('line', (line) => {
    let entry: { level?: number; msg?: string; metrics?: string };
    try {
      entry = JSON.parse(line) as typeof entry;
    } catch {
      process.stderr.write(`agent: ${line}\n`);
      return;
    }
    if (entry.msg === 'agent started') metricsUrl = entry.metrics;
    if ((entry.level ?? 0) >= 40) process.stderr.write(`agent: ${line}\n`);
  });

  const scrape = async (atLeastSeq: number): Promise<void> => {
    if (metricsUrl === undefined) throw new Error("the agent reports but never logged 'agent started' with its metrics URL");
    const res = await fetch(metricsUrl);
    const page = await res.text();
    if (res.status !== 200) throw new Error(`GET ${metricsUrl} answered ${res.status}: ${page.slice(0, 200)}`);
    const seq = Number(/^nemutator_agent_report_sequence (\d+)$/m.exec(page)?.[1]);
    if (!(seq >= atLeastSeq)) throw new Error(`the agent's /metrics shows report ${seq}, older than report ${atLeastSeq} the controller has`);
    stats.metricsBytes = Buffer.byteLength(page);
    stats.scrapes += 1;
  };

  // The controller's registry, watched from the inside: a report that arrived is checked and
  // answered with a scrape. Polled, so a scrape follows a report within 200 ms.
  let firstReported: () => void = () => undefined;
  const firstReport = new Promise<void>((r) => (firstReported = r));
  let seen = 0;
  let lastReportAt = performance.now();
  let scraping = false;
  const watcher = setInterval(() => {
    const entry = controller.registry.get(NODE_NAME);
    if (entry === undefined || entry.reports === seen) {
      const silentMs = performance.now() - lastReportAt;
      if (silentMs > 3 * opts.intervalMs + 5_000)
        fail(new Error(`the controller has had no report from the agent for ${Math.round(silentMs / 1000)} s (report interval ${opts.intervalMs / 1000} s)`));
      return;
    }
    const report = entry.report!;
    seen = entry.reports;
    lastReportAt = performance.now();
    const pods = report.pods?.length ?? 0;
    const containers = containersOf(report);
    if (pods !== opts.pods || containers !== opts.containers) {
      fail(new Error(`the agent reported ${pods} pods and ${containers} containers; the fixture tree has ${opts.pods} and ${opts.containers}`));
      return;
    }
    stats.reports = seen;
    stats.collectMs.push(Number(report.collectMs ?? NaN));
    stats.frameBytes = encodeEnvelope({ report }).byteLength;
    if (scraping) return; // a scrape still running (a loaded machine) stands for this report too
    scraping = true;
    scrape(Number(report.seq ?? 0))
      .then(() => kubelet.step())
      .then(() => firstReported())
      .catch((e: Error) => fail(e))
      .finally(() => (scraping = false));
  }, 200);

  return {
    pid: child.pid!,
    firstReport,
    failed,
    stats: () => stats,
    async checkAtController() {
      const url = `${controller.apiUrl}/nodes/${NODE_NAME}`;
      const res = await fetch(url, { headers: { authorization: `Bearer ${adminToken}` } });
      const body = (await res.json()) as { connected?: boolean; stale?: boolean; pods?: number; report?: INodeReport | null };
      if (res.status !== 200) throw new Error(`GET ${url} answered ${res.status}: ${JSON.stringify(body)}`);
      const node: NodeAtController = {
        connected: body.connected === true,
        stale: body.stale !== false,
        pods: body.pods ?? 0,
        containers: containersOf(body.report),
        reports: controller.registry.get(NODE_NAME)?.reports ?? 0,
      };
      if (!node.connected || node.stale || node.pods !== opts.pods || node.containers !== opts.containers) {
        throw new Error(
          `the controller's view of ${NODE_NAME} at the end: ${JSON.stringify(node)}; expected connected, fresh, ${opts.pods} pods and ${opts.containers} containers`,
        );
      }
      return node;
    },
    async stop() {
      stopping = true;
      clearInterval(watcher);
      await kubelet.finish().catch((e: Error) => process.stderr.write(`bench/agent: ${e.message}\n`));
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }
      await controller.stop();
    },
  };
}

/**
 * A node's pod churn, as kubelet drives the CSI plugin: after every report one new pod's
 * nemutator-socket volume is published and, once five are mounted, the oldest unpublished.
 * Every answer must be OK and the mounts must really come and go (mountinfo).
 */
function csiChurn(socket: string, kubeletDir: string, stats: WholeAgentStats, fail: (e: Error) => void): { step(): Promise<void>; finish(): Promise<void> } {
  let client: CsiClient | undefined;
  const mounted: Array<{ volume_id: string; target_path: string }> = [];
  let n = 0;
  const must = async (method: string, request: object): Promise<void> => {
    const r = await client!.call('node', method, request);
    if (!r.ok) throw new Error(`the agent's CSI plugin answered ${method} with status ${r.code}: ${r.details}`);
  };
  const unpublishOldest = async (): Promise<void> => {
    const req = mounted.shift()!;
    await must('NodeUnpublishVolume', { volume_id: req.volume_id, target_path: req.target_path });
    if (mountsAt(await readMountInfo(), req.target_path).length > 0) throw new Error(`${req.target_path} is still mounted after NodeUnpublishVolume`);
    stats.csiUnpublishes += 1;
  };
  return {
    async step() {
      try {
        client ??= csiClient(socket);
        const uid = `00000000-0000-4000-8000-${String(++n).padStart(12, '0')}`;
        const req = await kubeletPublish(kubeletDir, { uid, name: `app-${n}`, namespace: 'bench', serviceAccount: 'app' });
        await must('NodePublishVolume', req);
        if (mountsAt(await readMountInfo(), req.target_path).length !== 1) throw new Error(`${req.target_path} is not mounted after NodePublishVolume`);
        mounted.push(req);
        stats.csiPublishes += 1;
        if (mounted.length > 5) await unpublishOldest();
      } catch (e) {
        fail(e as Error);
      }
    },
    async finish() {
      try {
        while (mounted.length > 0) await unpublishOldest();
      } finally {
        client?.close();
      }
    },
  };
}
