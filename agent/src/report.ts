/**
 * The agent's NodeReport: node metrics plus every pod's and container's usage, read from
 * cgroups each interval. Rates (CPU cores, IO bytes/s) are differences between consecutive
 * collects of the same container; a container seen for the first time reports 0.
 */
import { existsSync } from 'node:fs';
import { setImmediate as yieldToLoop } from 'node:timers/promises';

import { ErrorCodes, NemuError } from '#common/errors.js';
import { type Logger, silentLogger } from '#common/log.js';
import type { IContainerUsage, INodeReport, IPodUsage } from '#proto/codec.js';

import { discoverPods, findKubepods } from './cgroups/discovery.ts';
import { type CgroupLayout, type CgroupVersionOption, detectCgroupLayout, walkRoot } from './cgroups/hierarchy.ts';
import { type ContainerCounters, readContainerCounters } from './cgroups/usage.ts';
import { type FilesystemUsage, NodeMetricsCollector } from './metrics/node.ts';

/** How the cluster informer names a pod and its containers (by container id). */
export type PodNames = (uid: string) => { namespace: string; name: string; containers: Record<string, string> } | undefined;

export interface ReportCollectorOptions {
  nodeName: string;
  cgroupRoot: string;
  procRoot?: string;
  cgroupVersion?: CgroupVersionOption;
  podNames?: PodNames;
  log?: Logger;
  /** Filesystem usage source and refresh period (tests and benchmarks replace `df`). */
  filesystems?: () => Promise<FilesystemUsage[]>;
  filesystemRefreshMs?: number;
  /** Monotonic milliseconds (tests pin it to check rates exactly). */
  clock?: () => number;
}

const CONTAINERS_PER_TURN = 50;

interface Previous {
  atMs: number;
  cpuSeconds?: number;
  readBytes?: number;
  writeBytes?: number;
}

function configError(key: string, expected: string, got: unknown): NemuError {
  return new NemuError(ErrorCodes.CONFIG, `${key} must be ${expected}, got ${JSON.stringify(got)}`);
}

function rate(now: number | undefined, before: number | undefined, seconds: number): number | undefined {
  if (now === undefined) return undefined;
  // A counter that went back belongs to a new cgroup at the same path: no rate this time.
  if (before === undefined || seconds <= 0 || now < before) return 0;
  return (now - before) / seconds;
}

export class ReportCollector {
  private readonly nodeName: string;
  private readonly layout: CgroupLayout;
  private readonly podNames: PodNames | undefined;
  private readonly log: Logger;
  private readonly node: NodeMetricsCollector;
  private readonly clock: () => number;
  private readonly previous = new Map<string, Previous>();
  private seq = 0;

  constructor(opts: ReportCollectorOptions) {
    if (typeof opts.nodeName !== 'string' || opts.nodeName === '') throw configError('nodeName', 'a non-empty node name', opts.nodeName);
    if (typeof opts.cgroupRoot !== 'string' || !opts.cgroupRoot.startsWith('/')) {
      throw configError('cgroupRoot', 'an absolute path such as /sys/fs/cgroup', opts.cgroupRoot);
    }
    if (!existsSync(opts.cgroupRoot)) {
      throw new NemuError(ErrorCodes.CONFIG, `cgroupRoot ${opts.cgroupRoot} does not exist; set it to where cgroups are mounted, usually /sys/fs/cgroup`);
    }
    const version = opts.cgroupVersion ?? 'auto';
    if (!['auto', 'v1', 'v2'].includes(version)) throw configError('cgroupVersion', "one of 'auto', 'v1', 'v2'", version);
    if (opts.procRoot !== undefined && !opts.procRoot.startsWith('/')) throw configError('procRoot', 'an absolute path such as /proc', opts.procRoot);
    this.nodeName = opts.nodeName;
    this.layout = detectCgroupLayout(opts.cgroupRoot, version);
    this.podNames = opts.podNames;
    this.log = opts.log ?? silentLogger;
    this.clock = opts.clock ?? (() => performance.now());
    this.node = new NodeMetricsCollector({
      procRoot: opts.procRoot,
      filesystems: opts.filesystems,
      filesystemRefreshMs: opts.filesystemRefreshMs,
      clock: this.clock,
      log: this.log,
    });
    this.log.debug({ layout: this.layout }, 'cgroup layout');
  }

  get cgroupLayout(): CgroupLayout {
    return this.layout;
  }

  async collect(): Promise<INodeReport> {
    const started = performance.now();
    const [node, pods] = await Promise.all([this.node.collect(), this.collectPods()]);
    const collectMs = Math.round(performance.now() - started);
    this.seq += 1;
    return { nodeName: this.nodeName, timeUnixMs: Date.now(), seq: this.seq, node, pods, collectMs };
  }

  private async collectPods(): Promise<IPodUsage[]> {
    const root = walkRoot(this.layout);
    const discovered = await discoverPods(root, await findKubepods(root));
    const seen = new Set<string>();
    const pods: IPodUsage[] = [];
    let sinceYield = 0;
    for (const pod of discovered) {
      const names = this.podNames?.(pod.uid);
      const containers: IContainerUsage[] = [];
      for (const c of pod.containers) {
        // Counters are read synchronously (cheap); yield now and then so a node with hundreds
        // of containers never holds the event loop (and the secrets socket) for long.
        if (++sinceYield % CONTAINERS_PER_TURN === 0) await yieldToLoop();
        seen.add(c.relPath);
        const usage: IContainerUsage = { id: c.id, name: names?.containers[c.id] ?? '', runtime: c.runtime, cgroupPath: c.relPath };
        this.addUsage(usage, c.relPath, readContainerCounters(this.layout, c.relPath));
        containers.push(usage);
      }
      pods.push({ uid: pod.uid, namespace: names?.namespace ?? '', name: names?.name ?? '', qos: pod.qos, containers });
    }
    // Forget containers that are gone, so the map does not grow with every pod ever run.
    for (const path of this.previous.keys()) if (!seen.has(path)) this.previous.delete(path);
    return pods;
  }

  /** Sets the counters and rates of the container at relPath on `out`; absent counters stay absent. */
  private addUsage(out: IContainerUsage, relPath: string, c: ContainerCounters): void {
    const atMs = this.clock();
    const before = this.previous.get(relPath);
    const seconds = before === undefined ? 0 : (atMs - before.atMs) / 1000;
    setDefined(out, 'cpuUsageCores', rate(c.cpuUsageSeconds, before?.cpuSeconds, seconds));
    setDefined(out, 'cpuUsageSecondsTotal', c.cpuUsageSeconds);
    setDefined(out, 'cpuThrottledSecondsTotal', c.cpuThrottledSeconds);
    setDefined(out, 'cpuThrottledPeriodsTotal', c.cpuThrottledPeriods);
    setDefined(out, 'cpuPeriodsTotal', c.cpuPeriods);
    setDefined(out, 'memoryWorkingSetBytes', c.memoryWorkingSetBytes);
    setDefined(out, 'memoryUsageBytes', c.memoryUsageBytes);
    setDefined(out, 'ioReadBytesTotal', c.ioReadBytes);
    setDefined(out, 'ioWriteBytesTotal', c.ioWriteBytes);
    setDefined(out, 'ioReadBytesPerSecond', rate(c.ioReadBytes, before?.readBytes, seconds));
    setDefined(out, 'ioWriteBytesPerSecond', rate(c.ioWriteBytes, before?.writeBytes, seconds));
    setDefined(out, 'processes', c.processes);
    // Updated in place: one record per container for its whole life, not a new one per collect.
    if (before === undefined) {
      this.previous.set(relPath, { atMs, cpuSeconds: c.cpuUsageSeconds, readBytes: c.ioReadBytes, writeBytes: c.ioWriteBytes });
    } else {
      before.atMs = atMs;
      before.cpuSeconds = c.cpuUsageSeconds;
      before.readBytes = c.ioReadBytes;
      before.writeBytes = c.ioWriteBytes;
    }
  }
}

function setDefined<K extends keyof IContainerUsage>(out: IContainerUsage, key: K, value: IContainerUsage[K] | undefined): void {
  if (value !== undefined) out[key] = value;
}
