import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, totalmem, uptime } from 'node:os';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { type FilesystemUsage, NodeMetricsCollector } from './node.ts';
import { isPhysicalInterface, isWholeDisk } from './procfs.ts';

function burnCpu(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // spin
  }
}

describe('node metrics on this machine', () => {
  it('reports cores, memory, load, uptime and filesystems that match the OS', async () => {
    const collector = new NodeMetricsCollector();
    const first = await collector.collect();
    expect(first.cpuCores).toBe(cpus().length);
    expect(first.cpuCoreUsage).toHaveLength(cpus().length);
    // The first collect has nothing to compare with: rates are 0.
    expect(first.cpuUsageCores).toBe(0);
    expect(first.netRxBytesPerSecond).toBe(0);
    expect(first.diskWriteBytesPerSecond).toBe(0);
    expect(first.memoryTotalBytes).toBe(totalmem());
    expect(first.memoryUsedBytes).toBeGreaterThan(0);
    expect(Number(first.memoryUsedBytes) + Number(first.memoryAvailableBytes)).toBe(totalmem());
    expect(first.load1).toBeCloseTo(loadavg()[0]!, 0);
    expect(Math.abs(Number(first.uptimeSeconds) - uptime())).toBeLessThan(5);
    expect(first.filesystems?.length).toBeGreaterThan(0);
    expect(first.filesystems?.some((fs) => fs.mount === '/' && Number(fs.sizeBytes) > 0)).toBe(true);
  });

  it('sees this test burning CPU in the next collect', async () => {
    const collector = new NodeMetricsCollector({ filesystems: async () => [] });
    await collector.collect();
    burnCpu(400);
    const next = await collector.collect();
    expect(next.cpuUsageCores).toBeGreaterThan(0.3);
    expect(next.cpuUsageCores).toBeLessThanOrEqual(cpus().length);
    for (const core of next.cpuCoreUsage ?? []) {
      expect(core).toBeGreaterThanOrEqual(0);
      expect(core).toBeLessThanOrEqual(1);
    }
    expect(Math.max(...(next.cpuCoreUsage ?? []))).toBeGreaterThan(0.3);
  });
});

describe('node metrics from a fixture /proc', () => {
  let proc: string;
  let nowMs = 0;

  const stat = (busy: number[], idle: number[]): string =>
    [
      `cpu  ${busy.reduce((a, b) => a + b)} 0 0 ${idle.reduce((a, b) => a + b)} 0 0 0 0 0 0`,
      ...busy.map((b, i) => `cpu${i} ${b} 0 0 ${idle[i]} 0 0 0 0 0 0`),
      'intr 12345',
      'ctxt 6789',
    ].join('\n');
  const netDev = (eth: number, veth: number): string =>
    [
      'Inter-|   Receive                                                |  Transmit',
      ' face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed',
      `    lo: ${veth} 1 0 0 0 0 0 0 ${veth} 1 0 0 0 0 0 0`,
      `  eth0: ${eth} 10 0 0 0 0 0 0 ${eth / 2} 5 0 0 0 0 0 0`,
      `veth1234: ${veth} 10 0 0 0 0 0 0 ${veth} 5 0 0 0 0 0 0`,
      `cali9f8e: ${veth} 10 0 0 0 0 0 0 ${veth} 5 0 0 0 0 0 0`,
    ].join('\n');
  const diskstats = (sectorsRead: number, sectorsWritten: number): string =>
    [
      `   7       0 loop0 10 0 ${sectorsRead} 0 0 0 ${sectorsWritten} 0 0 0 0 0 0 0 0 0 0`,
      ` 259       0 nvme0n1 100 0 ${sectorsRead} 0 100 0 ${sectorsWritten} 0 0 0 0 0 0 0 0 0 0`,
      ` 259       1 nvme0n1p1 100 0 ${sectorsRead} 0 100 0 ${sectorsWritten} 0 0 0 0 0 0 0 0 0 0`,
      ` 253       0 dm-0 100 0 ${sectorsRead} 0 100 0 ${sectorsWritten} 0 0 0 0 0 0 0 0 0 0`,
    ].join('\n');

  beforeEach(async () => {
    proc = await mkdtemp(join(tmpdir(), 'nemu-proc-'));
    await mkdir(join(proc, 'net'));
    await mkdir(join(proc, 'pressure'));
    await writeFile(join(proc, 'stat'), stat([100, 200], [900, 800]));
    await writeFile(
      join(proc, 'meminfo'),
      'MemTotal:       16384000 kB\nMemFree:         1000000 kB\nMemAvailable:    8192000 kB\nBuffers:  1 kB\nCached: 2 kB\nSwapTotal:       2000000 kB\nSwapFree:        1500000 kB\nHugePages_Total:       0\n',
    );
    await writeFile(join(proc, 'loadavg'), '1.50 0.75 0.25 3/94 12711\n');
    await writeFile(join(proc, 'uptime'), '12345.67 23456.78\n');
    await writeFile(join(proc, 'net', 'dev'), netDev(1_000_000, 777));
    await writeFile(join(proc, 'diskstats'), diskstats(2000, 4000));
    await writeFile(join(proc, 'pressure', 'cpu'), 'some avg10=12.50 avg60=6.00 avg300=1.00 total=999\n');
    await writeFile(join(proc, 'pressure', 'memory'), 'some avg10=0.00 avg60=0.00 avg300=0.00 total=5\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=3\n');
    nowMs = 1_000;
  });
  afterEach(async () => {
    await rm(proc, { recursive: true, force: true });
  });

  it('computes CPU, network and disk rates between two collects, counting only the node’s own devices', async () => {
    const collector = new NodeMetricsCollector({ procRoot: proc, clock: () => nowMs, filesystems: async () => [] });
    const first = await collector.collect();
    expect(first).toMatchObject({
      cpuCores: 2,
      cpuUsageCores: 0,
      cpuCoreUsage: [0, 0],
      load1: 1.5,
      load5: 0.75,
      load15: 0.25,
      memoryTotalBytes: 16384000 * 1024,
      memoryAvailableBytes: 8192000 * 1024,
      memoryUsedBytes: (16384000 - 8192000) * 1024,
      swapTotalBytes: 2000000 * 1024,
      swapUsedBytes: 500000 * 1024,
      uptimeSeconds: 12345.67,
      cpuPressure: { someAvg10: 12.5, someAvg60: 6, someAvg300: 1, someTotalUs: 999 },
      memoryPressure: { someTotalUs: 5, fullTotalUs: 3 },
    });
    // No full line for cpu (old kernel), no io file at all: absent, not zero.
    expect(first.cpuPressure?.fullAvg10).toBeUndefined();
    expect(first.ioPressure).toBeUndefined();

    // 2 s later: core 0 was busy 50 of 100 ticks, core 1 all 100; eth0 received 4 MB; the
    // disk read 2000 and wrote 6000 sectors (the partition, dm-0 and loop0 moved too).
    nowMs += 2_000;
    await writeFile(join(proc, 'stat'), stat([150, 300], [950, 800]));
    await writeFile(join(proc, 'net', 'dev'), netDev(5_000_000, 999_999_999));
    await writeFile(join(proc, 'diskstats'), diskstats(4000, 10000));
    const second = await collector.collect();
    expect(second.cpuCoreUsage).toEqual([0.5, 1]);
    expect(second.cpuUsageCores).toBeCloseTo(1.5, 10);
    expect(second.netRxBytesPerSecond).toBe(2_000_000);
    expect(second.netTxBytesPerSecond).toBe(1_000_000);
    expect(second.diskReadBytesPerSecond).toBe((2000 * 512) / 2);
    expect(second.diskWriteBytesPerSecond).toBe((6000 * 512) / 2);
  });

  it('gives absent fields, not an error, when /proc files are missing', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'nemu-proc-empty-'));
    try {
      const metrics = await new NodeMetricsCollector({ procRoot: empty, filesystems: async () => [] }).collect();
      expect(metrics).toEqual({ filesystems: [] });
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });

  it('runs the filesystem source (df) at most once per refresh period and never waits for a slow refresh', async () => {
    let calls = 0;
    let release: (() => void) | undefined;
    const source = async (): Promise<FilesystemUsage[]> => {
      calls++;
      if (calls > 1) await new Promise<void>((resolve) => (release = resolve));
      return [{ mount: '/', device: '/dev/vda', sizeBytes: 100 * calls, usedBytes: 10 }];
    };
    const collector = new NodeMetricsCollector({ procRoot: proc, clock: () => nowMs, filesystems: source, filesystemRefreshMs: 60_000 });
    for (let i = 0; i < 5; i++) {
      nowMs += 10_000;
      await collector.collect();
    }
    expect(calls).toBe(1);
    nowMs += 60_000;
    // The refresh hangs (a dead NFS mount): the collect still answers, with the previous list.
    const during = await collector.collect();
    expect(calls).toBe(2);
    expect(during.filesystems).toEqual([{ mount: '/', device: '/dev/vda', sizeBytes: 100, usedBytes: 10 }]);
    release?.();
    await new Promise((r) => setTimeout(r, 10));
    expect((await collector.collect()).filesystems?.[0]?.sizeBytes).toBe(200);
  });
});

describe('which devices count', () => {
  it('counts physical interfaces, not loopback, veth, bridges or overlays', () => {
    expect(['eth0', 'ens5', 'enp0s3', 'wlan0', 'bond0'].every(isPhysicalInterface)).toBe(true);
    expect(
      ['lo', 'veth1a2b', 'cali123', 'cilium_host', 'lxc0', 'flannel.1', 'cni0', 'docker0', 'br-1f', 'vxlan.calico', 'tunl0'].some(isPhysicalInterface),
    ).toBe(false);
  });

  it('counts whole disks, not partitions or stacked devices', () => {
    expect(['sda', 'vda', 'xvdf', 'nvme0n1', 'mmcblk0'].every(isWholeDisk)).toBe(true);
    expect(['sda1', 'vda15', 'nvme0n1p2', 'mmcblk0p1', 'dm-0', 'md0', 'loop3', 'zram0', 'sr0'].some(isWholeDisk)).toBe(false);
  });
});

describe('filesystem usage', () => {
  it('reports what df reports for the root filesystem, and leaves kernel views out', async () => {
    const { systemFilesystems } = await import('./node.ts');
    const { execFileSync } = await import('node:child_process');
    const list = await systemFilesystems();
    const root = list.find((f) => f.mount === '/');
    expect(root).toBeDefined();
    const [, sizeK, usedK] = execFileSync('df', ['-k', '--output=target,size,used', '/'], { encoding: 'utf8' })
      .trim()
      .split('\n')[1]!
      .trim()
      .split(/\s+/)
      .map(Number);
    expect(Number(root!.sizeBytes)).toBe(sizeK! * 1024);
    // Used blocks move while the tests write: within 1 %.
    expect(Math.abs(Number(root!.usedBytes) - usedK! * 1024) / (sizeK! * 1024)).toBeLessThan(0.01);
    expect(list.some((f) => (f.mount ?? '').startsWith('/proc') || (f.mount ?? '').startsWith('/sys/fs/cgroup/'))).toBe(false);
  });

  it('reads mount points with escaped spaces', async () => {
    const { systemFilesystems } = await import('./node.ts');
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const dir = mkdtempSync(`${tmpdir()}/nemu-mounts-`);
    writeFileSync(`${dir}/mounts`, `/dev/root / ext4 rw 0 0\nproc /proc proc rw 0 0\n/dev/x /no\\040such\\040dir ext4 rw 0 0\n`);
    const list = await systemFilesystems(`${dir}/mounts`);
    expect(list.map((f) => f.mount)).toEqual(['/']);
  });
});
