import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { buildCgroupTree, type FixtureTree } from '../../test-fixtures/cgroups/tree.ts';
import { detectCgroupLayout } from './hierarchy.ts';
import { countLines, keyedValue, parseBlkioServiceBytes, parseIoStat, readContainerCounters } from './usage.ts';

const ID = 'd'.repeat(64);
const UID = '11111111-2222-4333-8444-555566667777';
const counters = {
  cpuUsageUsec: 2_345_678,
  nrPeriods: 500,
  nrThrottled: 42,
  throttledUsec: 1_250_000,
  memoryUsageBytes: 300_000_000,
  inactiveFileBytes: 100_000_000,
  readBytes: 1_000_000,
  writeBytes: 3_000_000,
  pids: [10, 11, 12],
};
const expected = {
  cpuUsageSeconds: 2.345678,
  cpuPeriods: 500,
  cpuThrottledPeriods: 42,
  cpuThrottledSeconds: 1.25,
  memoryUsageBytes: 300_000_000,
  memoryWorkingSetBytes: 200_000_000,
  ioReadBytes: 1_000_000,
  ioWriteBytes: 3_000_000,
  processes: 3,
};

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'nemu-usage-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

async function read(tree: FixtureTree): Promise<Awaited<ReturnType<typeof readContainerCounters>>> {
  const paths = await buildCgroupTree(root, tree);
  return readContainerCounters(detectCgroupLayout(root), paths.get(ID)!);
}

describe('container counters', () => {
  it.each([
    ['v2', undefined],
    ['v1 (cpu,cpuacct together)', ['cpu,cpuacct', 'memory', 'blkio']],
    ['v1 (cpu and cpuacct apart)', ['cpu', 'cpuacct', 'memory', 'blkio']],
    ['v1 (cpuacct,cpu spelling)', ['cpuacct,cpu', 'memory', 'blkio']],
  ] as const)('%s: CPU seconds, throttling, working set, IO bytes and processes', async (name, hierarchies) => {
    const version = name.startsWith('v2') ? 'v2' : 'v1';
    const got = await read({
      version,
      driver: 'systemd',
      v1Hierarchies: hierarchies ? [...hierarchies] : undefined,
      pods: [{ uid: UID, qos: 'burstable', containers: [{ id: ID, counters }] }],
    });
    expect(got).toEqual(expected);
  });

  it('v2 without the cpu, memory and io controllers (as on a hybrid host): CPU seconds only, other fields absent', async () => {
    const got = await read({
      version: 'v2',
      driver: 'systemd',
      pods: [{ uid: UID, qos: 'besteffort', containers: [{ id: ID, counters, omit: ['memory.current', 'memory.stat', 'io.stat', 'cgroup.procs'] }] }],
    });
    expect(got).toEqual({ cpuUsageSeconds: 2.345678, cpuPeriods: 500, cpuThrottledPeriods: 42, cpuThrottledSeconds: 1.25 });
  });

  it('v1 without memory and blkio hierarchies: CPU fields only', async () => {
    const got = await read({
      version: 'v1',
      driver: 'cgroupfs',
      v1Hierarchies: ['cpu,cpuacct'],
      pods: [{ uid: UID, qos: 'guaranteed', containers: [{ id: ID, counters }] }],
    });
    expect(got).toEqual({ cpuUsageSeconds: 2.345678, cpuPeriods: 500, cpuThrottledPeriods: 42, cpuThrottledSeconds: 1.25, processes: 3 });
  });

  it('working set is usage when memory.stat is missing, and never negative', async () => {
    const noStat = await read({
      version: 'v2',
      driver: 'systemd',
      pods: [{ uid: UID, qos: 'burstable', containers: [{ id: ID, counters, omit: ['memory.stat'] }] }],
    });
    expect(noStat.memoryWorkingSetBytes).toBe(300_000_000);
    await rm(root, { recursive: true, force: true });
    const inactiveAboveUsage = await read({
      version: 'v2',
      driver: 'systemd',
      pods: [{ uid: UID, qos: 'burstable', containers: [{ id: ID, counters: { ...counters, memoryUsageBytes: 1000, inactiveFileBytes: 5000 } }] }],
    });
    expect(inactiveAboveUsage.memoryWorkingSetBytes).toBe(0);
  });

  it('a container with no process left counts 0 processes (not absent)', async () => {
    const got = await read({ version: 'v2', driver: 'systemd', pods: [{ uid: UID, qos: 'burstable', containers: [{ id: ID, counters: { pids: [] } }] }] });
    expect(got.processes).toBe(0);
  });

  it('a container removed between discovery and reading gives an empty record, not an error', async () => {
    await buildCgroupTree(root, { version: 'v2', driver: 'systemd', pods: [] });
    expect(await readContainerCounters(detectCgroupLayout(root), '/kubepods.slice/gone.scope')).toEqual({});
  });

  it('reads the real cgroup v2 root of this machine without crashing', async () => {
    const v2 = ['/sys/fs/cgroup', '/sys/fs/cgroup/unified'].find((r) => existsSync(join(r, 'cgroup.controllers')));
    expect(v2, 'this machine has a cgroup v2 hierarchy').toBeDefined();
    const got = await readContainerCounters({ version: 'v2', root: v2! }, '/');
    // cpu.stat's usage_usec exists in every v2 cgroup, controllers enabled or not.
    expect(got.cpuUsageSeconds).toBeGreaterThan(0);
    expect(got.processes).toBeGreaterThan(0);
  });
});

describe('cgroup file parsers', () => {
  it('finds a key of a key-value file by its whole name, first line or later', () => {
    const memStat = 'inactive_file 7\ntotal_inactive_file 500\nfile 9\n';
    expect(keyedValue(memStat, 'inactive_file')).toBe(7);
    expect(keyedValue(memStat, 'total_inactive_file')).toBe(500);
    expect(keyedValue('total_inactive_file 500\n', 'inactive_file')).toBeUndefined();
    expect(keyedValue('usage_usec 10\nuser_usec 4', 'user_usec')).toBe(4);
    expect(keyedValue('nr_periods x\n', 'nr_periods')).toBeUndefined();
  });

  it('counts pids in cgroup.procs, with or without a final newline', () => {
    expect(countLines('')).toBe(0);
    expect(countLines('1\n2\n3\n')).toBe(3);
    expect(countLines('1\n2')).toBe(2);
  });

  it('sums io.stat over devices and tolerates an empty file', () => {
    expect(parseIoStat('8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n8:16 rbytes=5 wbytes=7 rios=1 wios=1 dbytes=3 dios=1\n')).toEqual({
      readBytes: 15,
      writeBytes: 27,
    });
    expect(parseIoStat('')).toEqual({ readBytes: 0, writeBytes: 0 });
    // Whole field names only: not the tail of another field's name, not the device column.
    expect(parseIoStat('8:0 rbytes=1 wbytes=2 xrbytes=100 xwbytes=100\nrbytes=9 wbytes=3\n')).toEqual({ readBytes: 1, writeBytes: 5 });
  });

  it('sums blkio Read/Write lines and ignores Total lines', () => {
    expect(parseBlkioServiceBytes('8:0 Read 100\n8:0 Write 200\n8:0 Sync 300\n8:0 Total 300\n8:16 Read 1\n8:16 Write 2\nTotal 303\n')).toEqual({
      readBytes: 101,
      writeBytes: 202,
    });
  });
});
