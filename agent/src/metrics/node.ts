/**
 * The node's own metrics: CPU (total and per core), load, memory, swap, network and disk
 * throughput, filesystems and pressure. Rates come from the difference between two
 * consecutive collects; the first collect reports them as 0.
 */
import { readFile, statfs } from 'node:fs/promises';
import { join } from 'node:path';

import type { Logger } from '#common/log.js';
import { silentLogger } from '#common/log.js';
import type { INodeMetrics } from '#proto/codec.js';

import { readKernelFile } from './kernel-file.ts';
import { readPressure } from './pressure.ts';
import { type CpuTimes, parseDiskstats, parseLoadavg, parseMeminfo, parseNetDev, parseProcStat, parseUptime } from './procfs.ts';

export type FilesystemUsage = NonNullable<INodeMetrics['filesystems']>[number];

export interface NodeMetricsOptions {
  procRoot?: string;
  /** How often the filesystem list is refreshed (statfs of every mount: cheap, but not needed every interval). */
  filesystemRefreshMs?: number;
  /** Where filesystem usage comes from (default: /proc/self/mounts and statfs). */
  filesystems?: () => Promise<FilesystemUsage[]>;
  /** Monotonic milliseconds (tests pin it to check rates exactly). */
  clock?: () => number;
  log?: Logger;
}

interface Sample {
  atMs: number;
  cpu?: { all: CpuTimes; cores: CpuTimes[] };
  net?: { rxBytes: number; txBytes: number };
  disk?: { readBytes: number; writeBytes: number };
}

/** Filesystems that hold no data of their own (what `df` leaves out with -x, and kernel views). */
const PSEUDO_FILESYSTEMS = new Set([
  'proc',
  'sysfs',
  'cgroup',
  'cgroup2',
  'devpts',
  'mqueue',
  'debugfs',
  'tracefs',
  'securityfs',
  'pstore',
  'bpf',
  'autofs',
  'configfs',
  'fusectl',
  'hugetlbfs',
  'binfmt_misc',
  'rpc_pipefs',
  'nsfs',
  'selinuxfs',
  'efivarfs',
  'ramfs',
  'squashfs',
]);

/** `/proc/self/mounts` escapes spaces and the like as octal (`\040`). */
function unescapeMount(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/**
 * Mounted filesystems' size and use, as `df` reports them, from `/proc/self/mounts` and
 * statfs(2): no child process (systeminformation's fsSize runs `df`) and ~5 MiB less memory.
 */
export async function systemFilesystems(mountsFile = '/proc/self/mounts'): Promise<FilesystemUsage[]> {
  const text = await readFile(mountsFile, 'utf8');
  const seen = new Set<string>();
  const out: FilesystemUsage[] = [];
  for (const line of text.split('\n')) {
    const [device, rawMount, type] = line.split(' ');
    if (!device || !rawMount || !type || PSEUDO_FILESYSTEMS.has(type)) continue;
    const mount = unescapeMount(rawMount);
    if (seen.has(mount)) continue;
    seen.add(mount);
    try {
      const st = await statfs(mount);
      if (st.blocks === 0) continue;
      out.push({ mount, device: unescapeMount(device), sizeBytes: st.blocks * st.bsize, usedBytes: (st.blocks - st.bfree) * st.bsize });
    } catch {
      // unmounted meanwhile, or not ours to see
    }
  }
  return out;
}

function fraction(now: CpuTimes, before: CpuTimes | undefined): number {
  if (before === undefined) return 0;
  const total = now.total - before.total;
  if (total <= 0) return 0;
  return Math.min(1, Math.max(0, (now.busy - before.busy) / total));
}

function perSecond(now: number, before: number | undefined, seconds: number): number {
  if (before === undefined || seconds <= 0 || now < before) return 0;
  return (now - before) / seconds;
}

export class NodeMetricsCollector {
  private readonly procRoot: string;
  private readonly filesystemRefreshMs: number;
  private readonly filesystemSource: () => Promise<FilesystemUsage[]>;
  private readonly log: Logger;
  private readonly clock: () => number;
  private previous: Sample | undefined;
  private filesystems: FilesystemUsage[] | undefined;
  private filesystemsAtMs = -Infinity;
  private filesystemRefresh: Promise<void> | undefined;

  constructor(opts: NodeMetricsOptions = {}) {
    this.procRoot = opts.procRoot ?? '/proc';
    this.filesystemRefreshMs = opts.filesystemRefreshMs ?? 60_000;
    this.filesystemSource = opts.filesystems ?? systemFilesystems;
    this.log = opts.log ?? silentLogger;
    this.clock = opts.clock ?? (() => performance.now());
  }

  async collect(): Promise<INodeMetrics> {
    const filesystems = await this.currentFilesystems();
    const proc = (file: string): string | undefined => readKernelFile(join(this.procRoot, file));
    const sample = this.takeSample(proc);
    const before = this.previous;
    this.previous = sample;
    const out: INodeMetrics = cpuUsage(sample, before);
    const loadavg = proc('loadavg');
    const load = loadavg === undefined ? undefined : parseLoadavg(loadavg);
    if (load) [out.load1, out.load5, out.load15] = load;
    const meminfo = proc('meminfo');
    if (meminfo !== undefined) Object.assign(out, memoryUsage(parseMeminfo(meminfo)));
    Object.assign(out, throughput(sample, before));
    if (filesystems) out.filesystems = filesystems;
    const cpuPressure = readPressure(this.procRoot, 'cpu');
    const memoryPressure = readPressure(this.procRoot, 'memory');
    const ioPressure = readPressure(this.procRoot, 'io');
    if (cpuPressure) out.cpuPressure = cpuPressure;
    if (memoryPressure) out.memoryPressure = memoryPressure;
    if (ioPressure) out.ioPressure = ioPressure;
    const uptime = proc('uptime');
    const up = uptime === undefined ? undefined : parseUptime(uptime);
    if (up !== undefined) out.uptimeSeconds = up;
    return out;
  }

  /** The cumulative counters that rates are computed from, read now. */
  private takeSample(proc: (file: string) => string | undefined): Sample {
    const stat = proc('stat');
    const netDev = proc('net/dev');
    const diskstats = proc('diskstats');
    return {
      atMs: this.clock(),
      cpu: stat === undefined ? undefined : parseProcStat(stat),
      net: netDev === undefined ? undefined : parseNetDev(netDev),
      disk: diskstats === undefined ? undefined : parseDiskstats(diskstats),
    };
  }

  /**
   * The cached filesystem list. Only the very first collect waits for it; later refreshes run
   * in the background so a slow `df` (a hung NFS mount) never delays a report.
   */
  private async currentFilesystems(): Promise<FilesystemUsage[] | undefined> {
    const stale = this.clock() - this.filesystemsAtMs >= this.filesystemRefreshMs;
    if (stale && this.filesystemRefresh === undefined) {
      this.filesystemsAtMs = this.clock();
      this.filesystemRefresh = this.filesystemSource()
        .then((list) => {
          this.filesystems = list;
        })
        .catch((err: unknown) => {
          this.log.warn({ err }, 'filesystem usage unavailable; reporting the previous list');
        })
        .finally(() => {
          this.filesystemRefresh = undefined;
        });
    }
    if (this.filesystems === undefined && this.filesystemRefresh !== undefined) await this.filesystemRefresh;
    return this.filesystems;
  }
}

/** CPU use over the time since the previous sample, in all and per core. */
function cpuUsage(sample: Sample, before: Sample | undefined): INodeMetrics {
  if (!sample.cpu) return {};
  const cores = sample.cpu.cores.length;
  return {
    cpuCores: cores,
    cpuCoreUsage: sample.cpu.cores.map((core, i) => fraction(core, before?.cpu?.cores[i])),
    cpuUsageCores: fraction(sample.cpu.all, before?.cpu?.all) * cores,
  };
}

/** Network and disk bytes per second since the previous sample. */
function throughput(sample: Sample, before: Sample | undefined): INodeMetrics {
  const seconds = before === undefined ? 0 : (sample.atMs - before.atMs) / 1000;
  const out: INodeMetrics = {};
  if (sample.net) {
    out.netRxBytesPerSecond = perSecond(sample.net.rxBytes, before?.net?.rxBytes, seconds);
    out.netTxBytesPerSecond = perSecond(sample.net.txBytes, before?.net?.txBytes, seconds);
  }
  if (sample.disk) {
    out.diskReadBytesPerSecond = perSecond(sample.disk.readBytes, before?.disk?.readBytes, seconds);
    out.diskWriteBytesPerSecond = perSecond(sample.disk.writeBytes, before?.disk?.writeBytes, seconds);
  }
  return out;
}

/** Memory and swap from /proc/meminfo's fields. */
function memoryUsage(mem: Map<string, number>): INodeMetrics {
  const out: INodeMetrics = {};
  const total = mem.get('MemTotal');
  // MemAvailable exists since Linux 3.14; older kernels get the classic free+buffers+cached.
  const available = mem.get('MemAvailable') ?? sum(mem, ['MemFree', 'Buffers', 'Cached']);
  if (total !== undefined) {
    out.memoryTotalBytes = total;
    if (available !== undefined) {
      out.memoryAvailableBytes = available;
      out.memoryUsedBytes = Math.max(0, total - available);
    }
  }
  const swapTotal = mem.get('SwapTotal');
  const swapFree = mem.get('SwapFree');
  if (swapTotal !== undefined) {
    out.swapTotalBytes = swapTotal;
    if (swapFree !== undefined) out.swapUsedBytes = Math.max(0, swapTotal - swapFree);
  }
  return out;
}

function sum(map: Map<string, number>, keys: string[]): number | undefined {
  let total = 0;
  for (const key of keys) {
    const v = map.get(key);
    if (v === undefined) return undefined;
    total += v;
  }
  return total;
}
