// A real busy process in a real pod-shaped cgroup v2 directory: the agent's report must show
// the CPU time the kernel accounted to it, the same the process's own /proc/<pid>/stat says.
import { type ChildProcess, execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

import { podOfPid } from '#agent/cgroups/proc.js';
import { ReportCollector } from '#agent/report.js';
import type { IContainerUsage, INodeReport } from '#proto/codec.js';

import { cgroupV2Root, createPodCgroup, type PodCgroup, spawnInCgroup } from '../harness/cgroup.ts';
import { sleep } from '../harness/tools.ts';
import { until } from '../harness/wait.ts';

const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());

/** utime + stime of a process in seconds, from /proc/<pid>/stat (fields 14 and 15). */
function procCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may hold spaces; the fields after its closing paren are fixed.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

function containerOf(report: INodeReport, cg: PodCgroup): IContainerUsage | undefined {
  const pod = report.pods?.find((p) => p.uid === cg.podUid);
  return pod?.containers?.find((c) => c.id === cg.containerId);
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function podWith(cmd: string, args: string[], opts: Parameters<typeof createPodCgroup>[0] = {}): Promise<{ cg: PodCgroup; child: ChildProcess }> {
  const cg = await createPodCgroup(opts);
  cleanups.push(() => cg.cleanup());
  const child = spawnInCgroup(cg, cmd, args, { stdio: 'ignore' });
  cleanups.push(async () => {
    child.kill('SIGKILL');
  });
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  // The shell moves itself into the cgroup, then execs: wait until it is there.
  await until(
    'the process is in the container cgroup',
    () => readFileSync(join(cg.containerDir, 'cgroup.procs'), 'utf8').split('\n').includes(String(child.pid)),
    10_000,
    10,
  );
  return { cg, child };
}

describe('per-container CPU from real cgroups', () => {
  it('reports a busy process’s CPU seconds and cores within 10 % of /proc/<pid>/stat', async () => {
    const { cg, child } = await podWith(process.execPath, ['-e', 'for(;;){}']);
    const collector = new ReportCollector({ nodeName: 'test-node', cgroupRoot: cgroupV2Root() });
    expect(collector.cgroupLayout.version).toBe('v2');

    // The busy loop has run (not a fixed wait: a loaded machine gives it its CPU later).
    await until('0.3 s of CPU in the busy process', () => procCpuSeconds(child.pid!) >= 0.3, 20_000);
    const first = await collector.collect();
    const statFirst = procCpuSeconds(child.pid!);
    const t0 = performance.now();
    // The measured interval ends once the process has used another CPU-second, however long that takes.
    await until('another CPU-second in the busy process', () => procCpuSeconds(child.pid!) >= statFirst + 1, 30_000);
    const second = await collector.collect();
    const statSecond = procCpuSeconds(child.pid!);
    const elapsed = (performance.now() - t0) / 1000;

    const before = containerOf(first, cg);
    const after = containerOf(second, cg);
    expect(after, 'the pod appears in the report').toBeDefined();
    expect(after).toMatchObject({ runtime: 'containerd', cgroupPath: cg.relPath, processes: 1 });
    expect(second.pods?.find((p) => p.uid === cg.podUid)?.qos).toBe('burstable');

    const reported = Number(after!.cpuUsageSecondsTotal);
    expect(Math.abs(reported - statSecond) / statSecond).toBeLessThan(0.1);
    // The rate over the interval: about one core, as /proc says for the same interval.
    const statCores = (statSecond - statFirst) / elapsed;
    expect(statCores).toBeGreaterThan(0.2);
    expect(Math.abs(Number(after!.cpuUsageCores) - statCores) / statCores).toBeLessThan(0.1);
    expect(Number(after!.cpuUsageSecondsTotal)).toBeGreaterThan(Number(before!.cpuUsageSecondsTotal));

    // Memory is accounted only where the memory controller is enabled; elsewhere it is absent.
    if (existsSync(join(cg.containerDir, 'memory.current'))) expect(Number(after!.memoryWorkingSetBytes)).toBeGreaterThan(0);
    else expect(after!.memoryWorkingSetBytes).toBeUndefined();
  });

  it('shows an idle Guaranteed CRI-O pod at ~0 cores and its container as empty once the process is gone', async () => {
    const { cg, child } = await podWith('sleep', ['60'], { qos: 'guaranteed', runtime: 'crio' });
    const collector = new ReportCollector({ nodeName: 'test-node', cgroupRoot: cgroupV2Root() });
    await collector.collect();
    // A measurement window for the idle rate (nothing to wait for: the process is asleep).
    await sleep(1_000);
    const idle = containerOf(await collector.collect(), cg);
    expect(idle).toMatchObject({ runtime: 'crio', processes: 1 });
    expect(Number(idle!.cpuUsageCores)).toBeLessThan(0.05);

    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    await until('the container cgroup is empty', () => readFileSync(join(cg.containerDir, 'cgroup.procs'), 'utf8').trim() === '', 10_000, 10);
    const exited = await collector.collect();
    expect(exited.pods?.find((p) => p.uid === cg.podUid)?.qos).toBe('guaranteed');
    expect(containerOf(exited, cg)?.processes).toBe(0);
  });

  it('tells which pod and container a pid runs in (podOfPid), and that this test runs in none', async () => {
    const { cg, child } = await podWith('sleep', ['60'], { qos: 'besteffort' });
    expect(await podOfPid(child.pid!)).toEqual({
      podUid: cg.podUid,
      qos: 'besteffort',
      containerId: cg.containerId,
      runtime: 'containerd',
      cgroupPath: cg.relPath,
    });
    expect(await podOfPid(process.pid)).toBeUndefined();
  });
});
