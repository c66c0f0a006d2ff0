// Agent benchmark: the whole agent (agent/src/main.ts as it ships, reporting to a real
// controller over WSS) over a 200-pod cgroup v2 fixture tree, reporting every 10 s for 5 minutes,
// its /metrics scraped after every report, its CSI node plugin serving as in the DaemonSet and
// called by a kubelet-like client (a pod's volume published after every report, real bind
// mounts: run as root). Measured alongside, to explain its numbers: the metrics loop alone (a
// ReportCollector collecting and encoding, serving the agent's /metrics endpoint), the same
// modules loaded but idle, the same plus the CSI plugin serving, and an idle Node.
// Targets (issue 5), judged on the whole agent: RSS ≤ 60 MiB and CPU ≤ 1 % of one core.
// Results go to bench/RESULTS.md ("## agent").
//
//   npx tsx bench/agent/run.ts                       # the full 5 minutes
//   BENCH_AGENT_SECONDS=30 npx tsx bench/agent/run.ts # a quick run
// All five processes run with the Node flags the agent's image starts it with (the ENTRYPOINT
// of images/agent.Dockerfile).
// Also: BENCH_AGENT_INTERVAL_MS, BENCH_AGENT_PODS, BENCH_AGENT_NODE_FLAGS (flags instead of the
// image's, '' for none), BENCH_AGENT_TRACE=1 (print RSS every second), BENCH_AGENT_RESULTS (write
// the section to another file, for exploratory runs).
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, release, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import { buildCgroupTree, type FixturePod, type FixtureQos } from '../../agent/test-fixtures/cgroups/tree.ts';
import { compileForNode } from '../lib/compile.ts';
import { startWholeAgent, type WholeAgent } from './whole-agent.ts';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SECONDS = Number(process.env.BENCH_AGENT_SECONDS ?? 300);
const INTERVAL_MS = Number(process.env.BENCH_AGENT_INTERVAL_MS ?? 10_000);
const PODS = Number(process.env.BENCH_AGENT_PODS ?? 200);

/** The flags between `node` and the script in the ENTRYPOINT of the agent's image. */
function imageNodeFlags(): string[] {
  const dockerfile = readFileSync(join(REPO, 'images', 'agent.Dockerfile'), 'utf8');
  const entrypoints = [...dockerfile.matchAll(/^ENTRYPOINT\s+(\[.*\])\s*$/gm)];
  const [node, ...rest] = JSON.parse(entrypoints.at(-1)?.[1] ?? '[]') as string[];
  if (node !== 'node' || rest.length === 0) throw new Error('images/agent.Dockerfile: expected ENTRYPOINT ["node", …flags, script]');
  return rest.slice(0, -1);
}

const NODE_FLAGS = (process.env.BENCH_AGENT_NODE_FLAGS ?? imageNodeFlags().join(' ')).split(' ').filter((f) => f !== '');
const RSS_TARGET_MIB = 60;
const CPU_TARGET_PERCENT = 1;
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
const PAGE_SIZE = Number(execFileSync('getconf', ['PAGESIZE'], { encoding: 'utf8' }).trim());

/** Pods as a busy node has them: every QoS class, an app container, some a sidecar, all a sandbox. */
function podsOfANode(count: number): FixturePod[] {
  const qos: FixtureQos[] = ['guaranteed', 'burstable', 'besteffort'];
  const id = (): string => randomBytes(32).toString('hex');
  const n = (max: number): number => Math.floor(Math.random() * max);
  return Array.from({ length: count }, (_, i) => ({
    uid: randomUUID(),
    qos: qos[i % 3]!,
    containers: [
      { id: id(), counters: { pids: [n(1 << 22)] } },
      {
        id: id(),
        counters: {
          cpuUsageUsec: n(1e12),
          memoryUsageBytes: 50e6 + n(2e9),
          inactiveFileBytes: n(50e6),
          readBytes: 1e6 + n(1e10),
          writeBytes: 1e6 + n(1e10),
          pids: [n(1 << 22), n(1 << 22)],
        },
      },
      ...(i % 4 === 0 ? [{ id: id(), counters: { cpuUsageUsec: n(1e10), pids: [n(1 << 22)] } }] : []),
    ],
  }));
}

/** CPU seconds (utime + stime) and resident bytes of a process. */
async function sample(pid: number): Promise<{ cpuSeconds: number; rssBytes: number }> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { cpuSeconds: (Number(f[11]) + Number(f[12])) / CLK_TCK, rssBytes: Number(f[21]) * PAGE_SIZE };
}

interface Measured {
  rssMiB: number;
  peakRssMiB: number;
  cpuPercent: number;
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}

type Who = 'agent' | 'loop' | 'modules' | 'csi' | 'baseline';

/** The benchmark's environment without what would configure the agent or Node behind its back. */
function childEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(NEMUTATOR_|KUBERNETES_|NODE_OPTIONS$)/.test(k)));
}

/** Resolves when the child prints {"type":"ready"}; rejects if it exits first. */
function readyLine(child: ChildProcess, name: string): Promise<void> {
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`${name} exited with ${code} before it was ready`)));
    createInterface({ input: child.stdout! }).once('line', () => resolve());
  });
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'nemu-bench-agent-'));
  const children: ChildProcess[] = [];
  let whole: WholeAgent | undefined;
  try {
    const cgroupRoot = join(work, 'cgroup');
    const pods = podsOfANode(PODS);
    await buildCgroupTree(cgroupRoot, { version: 'v2', driver: 'systemd', pods });
    const containers = pods.reduce((sum, p) => sum + p.containers.length, 0);
    const [loop, modulesIdle, agentMain, csiIdle] = await compileForNode(
      REPO,
      ['bench/agent/collector-loop.ts', 'bench/agent/modules-idle.ts', 'agent/src/main.ts', 'bench/agent/csi-idle.ts'],
      join(work, 'js'),
    );

    const env = childEnv();
    // The whole agent first: the loop ends itself SECONDS after it starts, and the window
    // should not lose the time the controller and the agent take to start.
    whole = await startWholeAgent({ entry: agentMain!, nodeFlags: NODE_FLAGS, env, cgroupRoot, dir: work, intervalMs: INTERVAL_MS, pods: PODS, containers });
    const baseline = spawn(process.execPath, [...NODE_FLAGS, '-e', 'setInterval(() => {}, 1 << 30)'], { env, stdio: 'ignore' });
    const modules = spawn(process.execPath, [...NODE_FLAGS, modulesIdle!], { env, stdio: ['ignore', 'pipe', 'inherit'] });
    const csiArgs = [join(work, 'csi-idle', 'csi.sock'), join(work, 'csi-idle', 'kubelet'), join(work, 'csi-idle', 'run', 'agent.sock')];
    const csi = spawn(process.execPath, [...NODE_FLAGS, csiIdle!, ...csiArgs], { env, stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(csi);
    const agent = spawn(process.execPath, [...NODE_FLAGS, loop!, cgroupRoot, String(INTERVAL_MS), String(SECONDS)], {
      env,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.push(baseline, modules, agent);
    const pids: Record<Who, number> = { agent: whole.pid, loop: agent.pid!, modules: modules.pid!, csi: csi.pid!, baseline: baseline.pid! };

    const collectMs: number[] = [];
    let frameBytes = 0;
    let metricsBytes = 0;
    let heapTotalMiB = 0;
    let externalMiB = 0;
    let metricsUrl: string | undefined;
    let scrapes = 0;
    let scrapeFailed: (e: unknown) => void = () => undefined;
    const scrapeFailure = new Promise<never>((_, reject) => (scrapeFailed = reject));
    scrapeFailure.catch(() => undefined); // raced below; a failure after the end is no one's business
    // A scrape after every collect, as Prometheus would do it: the whole page over HTTP from
    // the agent's own /metrics endpoint.
    const scrape = async (): Promise<void> => {
      const res = await fetch(metricsUrl!);
      if (res.status !== 200) throw new Error(`GET ${metricsUrl} answered ${res.status}`);
      metricsBytes = (await res.arrayBuffer()).byteLength;
      scrapes += 1;
    };
    let ready: () => void = () => undefined;
    let done: () => void = () => undefined;
    const isReady = new Promise<void>((r) => (ready = r));
    let finished = false;
    const isDone = new Promise<void>((r) => (done = r)).then(() => {
      finished = true;
    });
    const failed = new Promise<never>((_, reject) =>
      agent.once('exit', (code) => {
        if (!finished) reject(new Error(`collector loop exited with ${code} before it finished`));
      }),
    );
    createInterface({ input: agent.stdout! }).on('line', (line) => {
      const event = JSON.parse(line) as {
        type: string;
        collectMs?: number;
        frameBytes?: number;
        heapTotalBytes?: number;
        externalBytes?: number;
        message?: string;
        metricsUrl?: string;
      };
      if (event.type === 'collect') {
        heapTotalMiB = Math.max(heapTotalMiB, event.heapTotalBytes! / 2 ** 20);
        externalMiB = Math.max(externalMiB, event.externalBytes! / 2 ** 20);
        if (process.env.BENCH_AGENT_TRACE)
          process.stderr.write(`collect ${event.collectMs} ms, heap total ${(event.heapTotalBytes! / 2 ** 20).toFixed(1)} MiB\n`);
        collectMs.push(event.collectMs!);
        frameBytes = event.frameBytes!;
        scrape().catch(scrapeFailed);
      } else if (event.type === 'listening') metricsUrl = event.metricsUrl;
      else if (event.type === 'ready') ready();
      else if (event.type === 'done') done();
      else if (event.type === 'error') console.error(`collector loop: ${event.message}`);
    });
    await Promise.race([
      Promise.all([isReady, readyLine(modules, 'modules baseline'), readyLine(csi, 'csi baseline'), whole.firstReport]),
      failed,
      scrapeFailure,
      whole.failed,
    ]);
    // Start-up (module loading, the first df) is not the steady state being measured.
    await new Promise((r) => setTimeout(r, 1_000));

    const sampleAll = async (): Promise<Record<Who, { cpuSeconds: number; rssBytes: number }>> => {
      const [w, l, m, c, b] = await Promise.all([sample(pids.agent), sample(pids.loop), sample(pids.modules), sample(pids.csi), sample(pids.baseline)]);
      return { agent: w, loop: l, modules: m, csi: c, baseline: b };
    };
    const startedAt = performance.now();
    const loadAtStart = loadavg()[0]!;
    const start = await sampleAll();
    const reportsAtStart = whole.stats().reports;
    const peak: Record<Who, number> = {
      agent: start.agent.rssBytes,
      loop: start.loop.rssBytes,
      modules: start.modules.rssBytes,
      csi: start.csi.rssBytes,
      baseline: start.baseline.rssBytes,
    };
    const rssSampler = setInterval(() => {
      void sampleAll()
        .then((now) => {
          for (const who of Object.keys(peak) as Who[]) peak[who] = Math.max(peak[who], now[who].rssBytes);
          if (process.env.BENCH_AGENT_TRACE) {
            process.stderr.write(
              `rss ${Math.round(performance.now() - startedAt)} ms: agent ${(now.agent.rssBytes / 2 ** 20).toFixed(1)} MiB, loop ${(now.loop.rssBytes / 2 ** 20).toFixed(1)} MiB\n`,
            );
          }
        })
        .catch(() => undefined);
    }, 1_000);
    const progress = setInterval(() => process.stderr.write(`  ${Math.round((performance.now() - startedAt) / 1000)} s / ${SECONDS} s\n`), 60_000);
    await Promise.race([isDone, failed, scrapeFailure, whole.failed]);
    const end = await sampleAll();
    // The kernel's high-water mark catches a peak between two samples, and start-up too.
    const agentHwmMiB = Number(/^VmHWM:\s+(\d+) kB$/m.exec(await readFile(`/proc/${pids.agent}/status`, 'utf8'))?.[1]) / 1024;
    clearInterval(rssSampler);
    clearInterval(progress);
    const elapsed = (performance.now() - startedAt) / 1000;
    // The agent must have been doing its job all along, not only be alive.
    const atController = await whole.checkAtController();
    const ws = whole.stats();
    const reportsInWindow = ws.reports - reportsAtStart;
    const expectedReports = Math.floor((elapsed * 1000) / INTERVAL_MS);
    if (reportsInWindow < expectedReports - 1) {
      throw new Error(
        `the controller received ${reportsInWindow} reports from the agent in ${Math.round(elapsed)} s; about ${expectedReports} were due (one per ${INTERVAL_MS / 1000} s)`,
      );
    }

    const measure = (who: Who): Measured => ({
      rssMiB: end[who].rssBytes / 2 ** 20,
      peakRssMiB: Math.max(peak[who], end[who].rssBytes) / 2 ** 20,
      cpuPercent: ((end[who].cpuSeconds - start[who].cpuSeconds) / elapsed) * 100,
    });
    const w = measure('agent');
    const a = measure('loop');
    const m = measure('modules');
    const c = measure('csi');
    const b = measure('baseline');
    const row = (name: string, x: Measured): string => `| ${name} | ${x.rssMiB.toFixed(1)} | ${x.peakRssMiB.toFixed(1)} | ${x.cpuPercent.toFixed(3)} |`;
    const diff = (name: string, x: Measured, y: Measured): string =>
      `| ${name} | ${(x.rssMiB - y.rssMiB).toFixed(1)} | ${(x.peakRssMiB - y.peakRssMiB).toFixed(1)} | ${(x.cpuPercent - y.cpuPercent).toFixed(3)} |`;
    const sorted = [...ws.collectMs].sort((x, y) => x - y);
    const loopSorted = [...collectMs].sort((x, y) => x - y);
    const machine = {
      nproc: cpus().length,
      kernel: release(),
      node: process.version,
      date: new Date().toISOString().slice(0, 16).replace('T', ' ') + ' UTC',
    };
    const verdict = (ok: boolean): string => (ok ? 'met' : '**missed**');
    const section = [
      '## agent',
      '',
      `The whole agent: \`agent/src/main.ts\` transpiled (as \`npm run build\` ships it) and started as the image starts it, over a fixture ` +
        `cgroup v2 tree of ${PODS} pods (${containers} containers, systemd driver), connected over WSS (CA pinned, shared token) to a ` +
        `controller running in the benchmark's process, reporting every ${INTERVAL_MS / 1000} s for ${Math.round(elapsed)} s. ` +
        `${reportsInWindow} reports reached the controller in that window, each checked to carry all ${PODS} pods and ${containers} containers ` +
        `and each followed by a scrape of the agent's /metrics over HTTP (${ws.scrapes} scrapes in all); at the end the controller's REST API ` +
        `showed the node connected and fresh with ${atController.pods} pods. The CSI node plugin serves in the agent as in the DaemonSet ` +
        `(\`csiSocket\`): a kubelet-like gRPC client published one new pod's socket volume after every report and, once five were mounted, ` +
        `unpublished the oldest (${ws.csiPublishes} publishes, ${ws.csiUnpublishes} unpublishes over the run, real bind mounts, all OK and checked in ` +
        '/proc/self/mountinfo). No cluster (no pod informer: pods are reported by UID), no Vault ' +
        '(no secrets socket), no profile captures. Node metrics from the real /proc, statfs of the mounts at most once a minute.',
      '',
      "Measured over the same window, to explain the agent's numbers: the metrics loop alone (a ReportCollector collecting and encoding " +
        `for the fleet link every ${INTERVAL_MS / 1000} s and serving the agent's /metrics endpoint, scraped after every collect: ` +
        `${scrapes} scrapes; no fleet link), a Node process with the loop's modules loaded but idle, the same plus the CSI plugin serving ` +
        '(never called), and an idle `node -e setInterval(…)`. ' +
        `${nodeFlagsNote()} \`npx tsx bench/agent/run.ts\`.`,
      '',
      `Machine: nproc ${machine.nproc}, kernel ${machine.kernel}, Node ${machine.node}, ${machine.date}; ` +
        `load average ${loadAtStart.toFixed(1)} at the start and ${loadavg()[0]!.toFixed(1)} at the end (other work shares the machine: ` +
        "CPU seconds are the processes' own, collect times are wall-clock and suffer from it).",
      '',
      '| process | RSS end (MiB) | RSS peak (MiB) | CPU (% of one core) |',
      '|---|---:|---:|---:|',
      row('**whole agent** (main.js, reporting to the controller)', w),
      row('metrics loop alone', a),
      row('same modules, idle', m),
      row('same modules + CSI plugin serving, idle', c),
      row('idle Node', b),
      diff('whole agent − metrics loop (fleet link over TLS, logger, config, command handlers)', w, a),
      diff('loop − idle Node', a, b),
      diff('loop − same modules (the collecting itself)', a, m),
      diff('CSI plugin at rest (its gRPC server on node:http2 listening): modules + CSI − modules', c, m),
      '',
      "The node's whole Nemutator footprint is the agent process above (metrics, fleet link, secrets socket when Vault is set, CSI " +
        'plugin, profiler when asked) plus the `csi-node-driver-registrar` sidecar, a separate Go program that only registers the ' +
        'plugin with kubelet at start-up and then waits; it is not run here (its image cannot be pulled, and its v2.13.0 sources need ' +
        "Go 1.23, newer than this machine's), and its container is limited to 48 MiB in manifests/agent/daemonset.yaml.",
      '',
      `Targets, on the whole agent: RSS ≤ ${RSS_TARGET_MIB} MiB (peak ${w.peakRssMiB.toFixed(1)} MiB: ${verdict(w.peakRssMiB <= RSS_TARGET_MIB)}), ` +
        `CPU ≤ ${CPU_TARGET_PERCENT} % of one core (${w.cpuPercent.toFixed(3)} %: ${verdict(w.cpuPercent <= CPU_TARGET_PERCENT)}). ` +
        `RSS is sampled every second; the kernel's high-water mark for the whole agent (VmHWM, start-up and the first, cold report ` +
        `included) was ${agentHwmMiB.toFixed(1)} MiB.`,
      '',
      `The whole agent's collect time for ${PODS} pods over ${sorted.length} reports: median ${quantile(sorted, 0.5)} ms, p95 ${quantile(sorted, 0.95)} ms, ` +
        `max ${sorted[sorted.length - 1]} ms (the first, cold: ${ws.collectMs[0]} ms). Report frame ${ws.frameBytes} bytes, /metrics page ${ws.metricsBytes} bytes. ` +
        `The loop alone: median ${quantile(loopSorted, 0.5)} ms over ${loopSorted.length} collects (frame ${frameBytes} bytes, page ${metricsBytes} bytes); ` +
        `its largest V8 heap right after a collect: ${heapTotalMiB.toFixed(1)} MiB (external ${externalMiB.toFixed(1)} MiB).`,
      '',
    ].join('\n');
    process.stdout.write(`${section}\n`);
    await writeSection(process.env.BENCH_AGENT_RESULTS ?? join(REPO, 'bench', 'RESULTS.md'), section);
  } finally {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
    await whole?.stop();
    await rm(work, { recursive: true, force: true });
  }
}

function nodeFlagsNote(): string {
  const flags = NODE_FLAGS.length > 0 ? `\`${NODE_FLAGS.join(' ')}\`` : 'none';
  return process.env.BENCH_AGENT_NODE_FLAGS === undefined
    ? `All five run with the Node flags the agent's image starts it with (images/agent.Dockerfile): ${flags}.`
    : `Node flags: ${flags} (BENCH_AGENT_NODE_FLAGS, not the image's).`;
}

/** Replaces this benchmark's own section of RESULTS.md (others' sections stay as they are). */
async function writeSection(file: string, section: string): Promise<void> {
  const current = await readFile(file, 'utf8').catch(() => '# Benchmark results\n');
  const start = current.search(/^## agent\s*$/m);
  let next: string;
  if (start < 0) {
    next = `${current.trimEnd()}\n\n${section}`;
  } else {
    const rest = current.slice(start + 1);
    const after = rest.search(/^## /m);
    next = current.slice(0, start) + section + (after < 0 ? '' : `\n${rest.slice(after)}`);
  }
  await writeFile(file, next.endsWith('\n') ? next : `${next}\n`);
}

await main();
