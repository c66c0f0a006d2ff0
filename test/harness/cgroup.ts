// Real cgroup v2 directories laid out the way kubelet (systemd driver) and the container
// runtimes name them, so the agent finds "pods" exactly as it would on a node.
import { type ChildProcess, spawn, type SpawnOptions } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { sleep } from './tools.ts';

export type QosClass = 'guaranteed' | 'burstable' | 'besteffort';

/**
 * Where cgroup v2 is mounted: NEMUTATOR_CGROUP_ROOT if set, else /sys/fs/cgroup on a unified
 * host, else /sys/fs/cgroup/unified on a hybrid one.
 */
export function cgroupV2Root(): string {
  const configured = process.env.NEMUTATOR_CGROUP_ROOT;
  if (configured !== undefined && configured !== '') {
    if (!existsSync(join(configured, 'cgroup.procs'))) {
      throw new Error(`NEMUTATOR_CGROUP_ROOT=${configured} is not a cgroup v2 directory (no cgroup.procs)`);
    }
    return configured;
  }
  for (const root of ['/sys/fs/cgroup', '/sys/fs/cgroup/unified']) {
    if (existsSync(join(root, 'cgroup.controllers'))) return root;
  }
  throw new Error(
    'no cgroup v2 hierarchy found at /sys/fs/cgroup or /sys/fs/cgroup/unified: mount one ' +
      '(`mount -t cgroup2 none /sys/fs/cgroup/unified`) or set NEMUTATOR_CGROUP_ROOT',
  );
}

export interface PodCgroup {
  root: string;
  podUid: string;
  containerId: string;
  qos: QosClass;
  podDir: string;
  containerDir: string;
  /** The container directory relative to root, with a leading slash, as in /proc/<pid>/cgroup. */
  relPath: string;
  /** Kills what still runs in the container and removes the directories this call created. */
  cleanup(): Promise<void>;
}

/** The levels kubelet and the runtime create, from kubepods.slice down to the container scope. */
export function podCgroupLevels(podUid: string, containerId: string, qos: QosClass, runtime: 'containerd' | 'crio' = 'containerd'): string[] {
  const uid = podUid.replace(/-/g, '_');
  const scope = runtime === 'crio' ? `crio-${containerId}.scope` : `cri-containerd-${containerId}.scope`;
  if (qos === 'guaranteed') return ['kubepods.slice', `kubepods-pod${uid}.slice`, scope];
  return ['kubepods.slice', `kubepods-${qos}.slice`, `kubepods-${qos}-pod${uid}.slice`, scope];
}

export async function createPodCgroup(
  opts: {
    root?: string;
    podUid?: string;
    containerId?: string;
    qos?: QosClass;
    runtime?: 'containerd' | 'crio';
  } = {},
): Promise<PodCgroup> {
  const root = opts.root ?? cgroupV2Root();
  const podUid = opts.podUid ?? randomUUID();
  const containerId = opts.containerId ?? randomBytes(32).toString('hex');
  const qos = opts.qos ?? 'burstable';
  if (!/^[0-9a-f]{64}$/.test(containerId)) {
    throw new Error(`createPodCgroup: containerId must be 64 lowercase hex characters, got ${containerId}`);
  }
  const levels = podCgroupLevels(podUid, containerId, qos, opts.runtime);
  const dirs = levels.map((_, i) => join(root, ...levels.slice(0, i + 1)));
  const created = await makeLevels(dirs);
  const containerDir = dirs[dirs.length - 1]!;

  return {
    root,
    podUid,
    containerId,
    qos,
    podDir: dirs[dirs.length - 2]!,
    containerDir,
    relPath: `/${levels.join('/')}`,
    async cleanup() {
      await emptyCgroup(containerDir);
      await removeTree(containerDir);
      // The pod level belongs to the test (its UID is the test's), whichever of the pod's
      // containers goes last removes it; shared upper levels only if this call created them
      // and no other test's pod uses them.
      const podDir = dirs[dirs.length - 2]!;
      for (const dir of [podDir, ...created.filter((d) => d !== containerDir && d !== podDir).reverse()]) {
        await removeIfUnused(dir);
      }
    },
  };
}

/**
 * Shared levels (kubepods.slice, the QoS slice) may be created or removed by a parallel test
 * at the same moment: EEXIST means someone else made it, ENOENT below means someone removed
 * a parent we saw, so start over.
 */
async function makeLevels(dirs: string[]): Promise<string[]> {
  for (let attempt = 0; ; attempt++) {
    const created: string[] = [];
    try {
      for (const dir of dirs) {
        try {
          await mkdir(dir);
          created.push(dir);
        } catch (err) {
          if (code(err) !== 'EEXIST') throw err;
        }
      }
      return created;
    } catch (err) {
      if (code(err) !== 'ENOENT' || attempt >= 20) {
        throw new Error(`could not create cgroup ${dirs[dirs.length - 1]}: ${String(err)}`, { cause: err });
      }
    }
  }
}

/** cgroup.kill when the kernel has it (5.14+), else SIGKILL each pid; then wait until empty. */
async function emptyCgroup(dir: string, timeoutMs = 10_000): Promise<void> {
  if (!existsSync(dir)) return;
  const deadline = Date.now() + timeoutMs;
  const hasKill = existsSync(join(dir, 'cgroup.kill'));
  for (;;) {
    const pids = await subtreePids(dir);
    if (pids.length === 0) return;
    if (hasKill) {
      await writeFile(join(dir, 'cgroup.kill'), '1').catch(() => undefined);
    } else {
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
    if (Date.now() > deadline) {
      throw new Error(`cgroup ${dir} still has processes ${pids.join(', ')} after ${timeoutMs} ms`);
    }
    await sleep(20);
  }
}

async function subtreePids(dir: string): Promise<number[]> {
  const pids: number[] = [];
  const text = await readFile(join(dir, 'cgroup.procs'), 'utf8').catch(() => '');
  for (const line of text.split('\n')) if (line !== '') pids.push(Number(line));
  for (const child of await childCgroups(dir)) pids.push(...(await subtreePids(child)));
  return pids;
}

async function childCgroups(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isDirectory()).map((e) => join(dir, e.name));
}

/** The container directory is wholly ours: remove it and anything a test made below it. */
async function removeTree(dir: string): Promise<void> {
  for (const child of await childCgroups(dir)) await removeTree(child);
  for (let attempt = 0; ; attempt++) {
    try {
      await rmdir(dir);
      return;
    } catch (err) {
      if (code(err) === 'ENOENT') return;
      // EBUSY right after the last process died: the kernel is still releasing it.
      if (code(err) !== 'EBUSY' || attempt >= 100) {
        throw new Error(`could not remove cgroup ${dir}: ${String(err)}`, { cause: err });
      }
      await sleep(20);
    }
  }
}

async function removeIfUnused(dir: string): Promise<void> {
  try {
    await rmdir(dir);
  } catch (err) {
    if (!['ENOENT', 'ENOTEMPTY', 'EBUSY'].includes(code(err) ?? '')) throw err;
  }
}

/**
 * Sweeps the shared levels (kubepods.slice and its QoS slices) that did not exist before the
 * run and are empty now. Per-test cleanup cannot always do it: the test that created
 * kubepods.slice may finish while another test's pod is still inside.
 */
export async function sharedLevelsPresent(root: string): Promise<Set<string>> {
  const present = new Set<string>();
  const top = join(root, 'kubepods.slice');
  if (!existsSync(top)) return present;
  present.add(top);
  for (const child of await childCgroups(top)) {
    present.add(child);
    // Pod levels under the QoS slices too: what a test run leaves behind is told apart from
    // what was there before.
    if (/kubepods-(burstable|besteffort)\.slice$/.test(child)) for (const pod of await childCgroups(child)) present.add(pod);
  }
  return present;
}

export async function removeSharedLevels(root: string, before: Set<string>): Promise<void> {
  const top = join(root, 'kubepods.slice');
  if (!existsSync(top)) return;
  for (const qos of ['burstable', 'besteffort']) {
    const dir = join(top, `kubepods-${qos}.slice`);
    if (!existsSync(dir)) continue;
    // Empty pod levels this run created (a test that died before its cleanup).
    for (const pod of await childCgroups(dir)) if (!before.has(pod)) await removeIfUnused(pod);
    if (!before.has(dir)) await removeIfUnused(dir);
  }
  for (const pod of await childCgroups(top)) if (/kubepods-pod.*\.slice$/.test(pod) && !before.has(pod)) await removeIfUnused(pod);
  if (!before.has(top)) await removeIfUnused(top);
}

/**
 * Starts `cmd` inside the container's cgroup: a shell writes its own pid to cgroup.procs and
 * then execs `cmd`, so the process is in the cgroup from its first instruction.
 */
export function spawnInCgroup(cg: PodCgroup, cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
  return spawn('/bin/sh', ['-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', cg.containerDir, cmd, ...args], opts);
}

function code(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}
