/**
 * Parsers for the /proc files the node metrics come from. Reading them directly costs a few
 * microseconds; systeminformation's currentLoad, networkStats and disksIO spawn a shell (or
 * lsblk) on every call, which an agent polling every few seconds on every node cannot afford.
 */

/** Jiffies a CPU spent busy and in total (busy + idle + iowait). */
export interface CpuTimes {
  busy: number;
  total: number;
}

/**
 * `/proc/stat` cpu lines: `cpu  user nice system idle iowait irq softirq steal guest guest_nice`.
 * guest time is already counted in user, so it is not added again.
 */
export function parseProcStat(text: string): { all: CpuTimes; cores: CpuTimes[] } | undefined {
  let all: CpuTimes | undefined;
  const cores: CpuTimes[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('cpu')) continue;
    const [name, ...raw] = line.trim().split(/\s+/);
    const v = raw.map(Number);
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = v;
    const idleAll = idle + iowait;
    const busy = user + nice + system + irq + softirq + steal;
    const times = { busy, total: busy + idleAll };
    if (name === 'cpu') all = times;
    else if (/^cpu\d+$/.test(name ?? '')) cores[Number(name!.slice(3))] = times;
  }
  if (all === undefined) return undefined;
  // Offline CPUs have no line: their slots stay idle rather than becoming holes.
  for (let i = 0; i < cores.length; i++) cores[i] ??= { busy: 0, total: 0 };
  return { all, cores };
}

/** `/proc/meminfo` in bytes (`MemTotal:  24684084 kB`). */
export function parseMeminfo(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([^:]+):\s+(\d+)(?:\s+kB)?$/.exec(line.trim());
    if (m) out.set(m[1]!, Number(m[2]) * (line.trimEnd().endsWith('kB') ? 1024 : 1));
  }
  return out;
}

/** `/proc/loadavg`: `0.51 0.29 0.14 3/94 12711`. */
export function parseLoadavg(text: string): [number, number, number] | undefined {
  const [a, b, c] = text.trim().split(/\s+/).map(Number);
  if (a === undefined || b === undefined || c === undefined || [a, b, c].some((x) => !Number.isFinite(x))) return undefined;
  return [a, b, c];
}

/** `/proc/uptime`: seconds since boot, then idle seconds. */
export function parseUptime(text: string): number | undefined {
  const first = Number(text.trim().split(/\s+/)[0]);
  return Number.isFinite(first) ? first : undefined;
}

// Interfaces whose traffic is already counted on a physical one (pods' veth pairs, bridges,
// overlay tunnels): summing them too would double the node's throughput.
const VIRTUAL_INTERFACE = /^(?:lo$|veth|cali|cilium|lxc|flannel|cni|docker|br-|virbr|ifb|kube-|tunl|vxlan|genev|weave|vethwe|datapath|nodelocaldns|dummy)/;

export function isPhysicalInterface(name: string): boolean {
  return !VIRTUAL_INTERFACE.test(name);
}

/** `/proc/net/dev` received and transmitted bytes, summed over the node's own interfaces. */
export function parseNetDev(text: string): { rxBytes: number; txBytes: number } {
  let rxBytes = 0;
  let txBytes = 0;
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const name = line.slice(0, colon).trim();
    if (name.includes('|') || !isPhysicalInterface(name)) continue;
    const fields = line
      .slice(colon + 1)
      .trim()
      .split(/\s+/)
      .map(Number);
    // receive: bytes packets errs drop fifo frame compressed multicast; transmit: bytes …
    rxBytes += fields[0] ?? 0;
    txBytes += fields[8] ?? 0;
  }
  return { rxBytes, txBytes };
}

// Devices layered on others (device mapper, md RAID) or not disks at all; counting them would
// count the same bytes twice.
const NOT_A_DISK = /^(?:loop|ram|zram|dm-|md|nbd|sr|fd)\d/;
const PARTITION = /^(?:(?:[shv]d[a-z]+|xvd[a-z]+)\d+|(?:nvme\d+n\d+|mmcblk\d+)p\d+)$/;

export function isWholeDisk(name: string): boolean {
  return !NOT_A_DISK.test(name) && !PARTITION.test(name);
}

/**
 * `/proc/diskstats` read and written bytes over whole disks. Sector counts there are always in
 * 512-byte units, whatever the device's sector size.
 */
export function parseDiskstats(text: string): { readBytes: number; writeBytes: number } {
  let readBytes = 0;
  let writeBytes = 0;
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    const name = f[2];
    if (name === undefined || f.length < 10 || !isWholeDisk(name)) continue;
    readBytes += Number(f[5]) * 512;
    writeBytes += Number(f[9]) * 512;
  }
  return { readBytes, writeBytes };
}
