/**
 * A container's counters read straight from its cgroup files, the way cAdvisor does. Any file
 * may be missing (a controller not enabled, a container that just exited, an old kernel): its
 * fields are then absent, never zero and never an error.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
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

async function readText(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** `key value` lines (cpu.stat, memory.stat) as a map. */
export function parseFlatKeyed(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const space = line.indexOf(' ');
    if (space <= 0) continue;
    const value = Number(line.slice(space + 1));
    if (Number.isFinite(value)) out.set(line.slice(0, space), value);
  }
  return out;
}

/** A file holding one number (memory.current, cpuacct.usage); "max" and garbage are absent. */
export function parseSingleValue(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const trimmed = text.trim();
  if (!/^\d+$/.test(trimmed)) return undefined;
  return Number(trimmed);
}

/** v2 io.stat: `8:0 rbytes=1 wbytes=2 rios=… wios=… dbytes=… dios=…`, summed over devices. */
export function parseIoStat(text: string): { readBytes: number; writeBytes: number } {
  let readBytes = 0;
  let writeBytes = 0;
  for (const line of text.split('\n')) {
    for (const field of line.split(' ').slice(1)) {
      const eq = field.indexOf('=');
      const value = Number(field.slice(eq + 1));
      if (!Number.isFinite(value)) continue;
      const key = field.slice(0, eq);
      if (key === 'rbytes') readBytes += value;
      else if (key === 'wbytes') writeBytes += value;
    }
  }
  return { readBytes, writeBytes };
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

export function countLines(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  let n = 0;
  for (const line of text.split('\n')) if (line.trim() !== '') n++;
  return n;
}

function workingSet(usage: number | undefined, inactiveFile: number | undefined): number | undefined {
  if (usage === undefined) return undefined;
  return Math.max(0, usage - (inactiveFile ?? 0));
}

async function readV2(dir: string): Promise<ContainerCounters> {
  const [cpuStat, memCurrent, memStat, ioStat, procs] = await Promise.all([
    readText(join(dir, 'cpu.stat')),
    readText(join(dir, 'memory.current')),
    readText(join(dir, 'memory.stat')),
    readText(join(dir, 'io.stat')),
    readText(join(dir, 'cgroup.procs')),
  ]);
  const out: ContainerCounters = {};
  if (cpuStat !== undefined) {
    const cpu = parseFlatKeyed(cpuStat);
    const usage = cpu.get('usage_usec');
    if (usage !== undefined) out.cpuUsageSeconds = usage / 1e6;
    // Present only when the cpu controller is enabled for this cgroup.
    const periods = cpu.get('nr_periods');
    if (periods !== undefined) out.cpuPeriods = periods;
    const throttled = cpu.get('nr_throttled');
    if (throttled !== undefined) out.cpuThrottledPeriods = throttled;
    const throttledUsec = cpu.get('throttled_usec');
    if (throttledUsec !== undefined) out.cpuThrottledSeconds = throttledUsec / 1e6;
  }
  const usage = parseSingleValue(memCurrent);
  if (usage !== undefined) {
    out.memoryUsageBytes = usage;
    out.memoryWorkingSetBytes = workingSet(usage, memStat === undefined ? undefined : parseFlatKeyed(memStat).get('inactive_file'));
  }
  if (ioStat !== undefined) {
    const io = parseIoStat(ioStat);
    out.ioReadBytes = io.readBytes;
    out.ioWriteBytes = io.writeBytes;
  }
  const processes = countLines(procs);
  if (processes !== undefined) out.processes = processes;
  return out;
}

async function readV1(layout: Extract<CgroupLayout, { version: 'v1' }>, relPath: string): Promise<ContainerCounters> {
  const at = (hierarchy: string | undefined, file: string): Promise<string | undefined> =>
    hierarchy === undefined ? Promise.resolve(undefined) : readText(join(hierarchy, relPath, file));
  const [cpuacctUsage, cpuStat, memUsage, memStat, blkio, procs] = await Promise.all([
    at(layout.cpuacct, 'cpuacct.usage'),
    at(layout.cpu, 'cpu.stat'),
    at(layout.memory, 'memory.usage_in_bytes'),
    at(layout.memory, 'memory.stat'),
    at(layout.blkio, 'blkio.throttle.io_service_bytes'),
    at(layout.walk, 'cgroup.procs'),
  ]);
  const out: ContainerCounters = {};
  const usageNs = parseSingleValue(cpuacctUsage);
  if (usageNs !== undefined) out.cpuUsageSeconds = usageNs / 1e9;
  if (cpuStat !== undefined) {
    const cpu = parseFlatKeyed(cpuStat);
    const periods = cpu.get('nr_periods');
    if (periods !== undefined) out.cpuPeriods = periods;
    const throttled = cpu.get('nr_throttled');
    if (throttled !== undefined) out.cpuThrottledPeriods = throttled;
    const throttledNs = cpu.get('throttled_time');
    if (throttledNs !== undefined) out.cpuThrottledSeconds = throttledNs / 1e9;
  }
  const usage = parseSingleValue(memUsage);
  if (usage !== undefined) {
    out.memoryUsageBytes = usage;
    out.memoryWorkingSetBytes = workingSet(usage, memStat === undefined ? undefined : parseFlatKeyed(memStat).get('total_inactive_file'));
  }
  if (blkio !== undefined) {
    const io = parseBlkioServiceBytes(blkio);
    out.ioReadBytes = io.readBytes;
    out.ioWriteBytes = io.writeBytes;
  }
  const processes = countLines(procs);
  if (processes !== undefined) out.processes = processes;
  return out;
}

/** The counters of the cgroup at relPath (relative to each hierarchy's root). */
export function readContainerCounters(layout: CgroupLayout, relPath: string): Promise<ContainerCounters> {
  return layout.version === 'v2' ? readV2(join(layout.root, relPath)) : readV1(layout, relPath);
}
