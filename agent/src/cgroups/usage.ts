/**
 * A container's counters read straight from its cgroup files, the way cAdvisor does. Any file
 * may be missing (a controller not enabled, a container that just exited, an old kernel): its
 * fields are then absent, never zero and never an error.
 */
import { readKernelFile, readKernelRecord } from '../metrics/kernel-file.ts';
import type { CgroupLayout } from './hierarchy.ts';

export interface ContainerCounters {
  cpuUsageSeconds?: number;
  cpuPeriods?: number;
  cpuThrottledPeriods?: number;
  cpuThrottledSeconds?: number;
  memoryUsageBytes?: number;
  /** usage − inactive_file, as kubelet and cAdvisor define it (what the OOM killer looks at). */
  memoryWorkingSetBytes?: number;
  ioReadBytes?: number;
  ioWriteBytes?: number;
  /** Processes directly in the container's cgroup; 0 for a container whose processes exited. */
  processes?: number;
}

const NEWLINE = 10;
const SPACE = 32;

/** Where the field starting at `from` ends: the next space or newline, or the end of the text. */
function fieldEnd(text: string, from: number): number {
  let end = from;
  while (end < text.length) {
    const ch = text.charCodeAt(end);
    if (ch === SPACE || ch === NEWLINE) break;
    end++;
  }
  return end;
}

/**
 * The value of `key` in a `key value` file (cpu.stat, memory.stat), without building a map or
 * search strings: this runs a few thousand times per collect on a busy node.
 */
export function keyedValue(text: string, key: string): number | undefined {
  for (let at = text.indexOf(key); at >= 0; at = text.indexOf(key, at + 1)) {
    const after = at + key.length;
    if ((at === 0 || text.charCodeAt(at - 1) === NEWLINE) && text.charCodeAt(after) === SPACE) {
      let end = text.indexOf('\n', after);
      if (end < 0) end = text.length;
      const value = Number(text.slice(after + 1, end));
      return Number.isFinite(value) ? value : undefined;
    }
  }
  return undefined;
}

/** A file holding one number (memory.current, cpuacct.usage); "max" and garbage are absent. */
export function parseSingleValue(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const trimmed = text.trim();
  if (!/^\d+$/.test(trimmed)) return undefined;
  return Number(trimmed);
}

/** The sum of a `name=value` field (`rbytes=`) over the lines of a v2 io.stat text. */
function sumIoField(text: string, name: string): number {
  let total = 0;
  for (let at = text.indexOf(name); at >= 0; at = text.indexOf(name, at + name.length)) {
    // A field, not the tail of another one's name: fields follow the device and a space.
    if (at === 0 || text.charCodeAt(at - 1) !== SPACE) continue;
    const from = at + name.length;
    const value = Number(text.slice(from, fieldEnd(text, from)));
    if (Number.isFinite(value)) total += value;
  }
  return total;
}

/** v2 io.stat: `8:0 rbytes=1 wbytes=2 rios=… wios=… dbytes=… dios=…`, summed over devices. */
export function parseIoStat(text: string): { readBytes: number; writeBytes: number } {
  return { readBytes: sumIoField(text, 'rbytes='), writeBytes: sumIoField(text, 'wbytes=') };
}

/** v1 blkio.throttle.io_service_bytes: `8:0 Read 123` … and a final `Total N`, summed over devices. */
export function parseBlkioServiceBytes(text: string): { readBytes: number; writeBytes: number } {
  let readBytes = 0;
  let writeBytes = 0;
  for (const line of text.split('\n')) {
    const [device, op, raw] = line.split(' ');
    if (device === undefined || raw === undefined || !device.includes(':')) continue;
    const value = Number(raw);
    if (!Number.isFinite(value)) continue;
    if (op === 'Read') readBytes += value;
    else if (op === 'Write') writeBytes += value;
  }
  return { readBytes, writeBytes };
}

/** Non-empty lines: the number of pids in a cgroup.procs text. */
export function countLines(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  let n = 0;
  let lineStart = 0;
  for (let i = 0; i <= text.length; i++) {
    if (i === text.length || text.charCodeAt(i) === 10) {
      if (i > lineStart) n++;
      lineStart = i + 1;
    }
  }
  return n;
}

function workingSet(usage: number | undefined, inactiveFile: number | undefined): number | undefined {
  if (usage === undefined) return undefined;
  return Math.max(0, usage - (inactiveFile ?? 0));
}

/** Fields from cpu.stat-style text; v2 counts microseconds, v1 nanoseconds. */
function cpuStatFields(out: ContainerCounters, text: string, throttledKey: string, unitsPerSecond: number): void {
  const periods = keyedValue(text, 'nr_periods');
  if (periods !== undefined) out.cpuPeriods = periods;
  const throttled = keyedValue(text, 'nr_throttled');
  if (throttled !== undefined) out.cpuThrottledPeriods = throttled;
  const throttledTime = keyedValue(text, throttledKey);
  if (throttledTime !== undefined) out.cpuThrottledSeconds = throttledTime / unitsPerSecond;
}

function readV2(dir: string): ContainerCounters {
  const out: ContainerCounters = {};
  const cpuStat = readKernelRecord(`${dir}/cpu.stat`);
  if (cpuStat !== undefined) {
    const usage = keyedValue(cpuStat, 'usage_usec');
    if (usage !== undefined) out.cpuUsageSeconds = usage / 1e6;
    // The throttling fields exist only when the cpu controller is enabled for this cgroup.
    cpuStatFields(out, cpuStat, 'throttled_usec', 1e6);
  }
  const usage = parseSingleValue(readKernelRecord(`${dir}/memory.current`));
  if (usage !== undefined) {
    out.memoryUsageBytes = usage;
    const memStat = readKernelRecord(`${dir}/memory.stat`);
    out.memoryWorkingSetBytes = workingSet(usage, memStat === undefined ? undefined : keyedValue(memStat, 'inactive_file'));
  }
  const ioStat = readKernelRecord(`${dir}/io.stat`);
  if (ioStat !== undefined) {
    const io = parseIoStat(ioStat);
    out.ioReadBytes = io.readBytes;
    out.ioWriteBytes = io.writeBytes;
  }
  const processes = countLines(readKernelFile(`${dir}/cgroup.procs`));
  if (processes !== undefined) out.processes = processes;
  return out;
}

function readV1(layout: Extract<CgroupLayout, { version: 'v1' }>, relPath: string): ContainerCounters {
  // Every file read here but cgroup.procs is one record.
  const at = (hierarchy: string | undefined, file: string): string | undefined =>
    hierarchy === undefined ? undefined : readKernelRecord(`${hierarchy}${relPath}/${file}`);
  const out: ContainerCounters = {};
  const usageNs = parseSingleValue(at(layout.cpuacct, 'cpuacct.usage'));
  if (usageNs !== undefined) out.cpuUsageSeconds = usageNs / 1e9;
  const cpuStat = at(layout.cpu, 'cpu.stat');
  if (cpuStat !== undefined) cpuStatFields(out, cpuStat, 'throttled_time', 1e9);
  const usage = parseSingleValue(at(layout.memory, 'memory.usage_in_bytes'));
  if (usage !== undefined) {
    out.memoryUsageBytes = usage;
    const memStat = at(layout.memory, 'memory.stat');
    out.memoryWorkingSetBytes = workingSet(usage, memStat === undefined ? undefined : keyedValue(memStat, 'total_inactive_file'));
  }
  const blkio = at(layout.blkio, 'blkio.throttle.io_service_bytes');
  if (blkio !== undefined) {
    const io = parseBlkioServiceBytes(blkio);
    out.ioReadBytes = io.readBytes;
    out.ioWriteBytes = io.writeBytes;
  }
  const processes = countLines(readKernelFile(`${layout.walk}${relPath}/cgroup.procs`));
  if (processes !== undefined) out.processes = processes;
  return out;
}

/**
 * The counters of the cgroup at relPath (relative to each hierarchy's root, with a leading
 * slash). Synchronous on purpose (see kernel-file.ts): some 50 µs per container.
 */
export function readContainerCounters(layout: CgroupLayout, relPath: string): ContainerCounters {
  return layout.version === 'v2' ? readV2(`${layout.root}${relPath}`) : readV1(layout, relPath);
}
