/**
 * The cgroup `nemutator run` starts a program in: shaped like a kubelet pod's container
 * (systemd driver, containerd naming, BestEffort QoS), so the agent's kernel-side identity
 * check (/proc/<pid>/cgroup → pod UID and container id) names the local pod exactly as it
 * names a pod on a node. Made under the cgroup v2 root local mode reads (cgroupRoot), which
 * takes root (or a delegated hierarchy).
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { NemuError } from '#common/errors.js';

import { ControllerErrorCodes } from '../../errors.ts';

export interface PodCgroup {
  /** The container's directory, where the program's pid is written. */
  dir: string;
  /** Kills what still runs inside, then removes the directories this call made. */
  remove(): Promise<void>;
}

/** kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<uid_>.slice/cri-containerd-<id>.scope */
export function podCgroupLevels(podUid: string, containerId: string): string[] {
  const uid = podUid.replace(/-/g, '_');
  return ['kubepods.slice', 'kubepods-besteffort.slice', `kubepods-besteffort-pod${uid}.slice`, `cri-containerd-${containerId}.scope`];
}

function code(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException).code;
}

export async function createPodCgroup(root: string, podUid: string, containerId: string): Promise<PodCgroup> {
  if (!existsSync(join(root, 'cgroup.procs')) || !existsSync(join(root, 'cgroup.controllers'))) {
    throw new NemuError(
      ControllerErrorCodes.RUN_CGROUP,
      `${root} is not a cgroup v2 hierarchy: nemutator run needs one to give the program a pod's identity; start local mode with --cgroup-root set to the v2 mount (on a hybrid host: /sys/fs/cgroup/unified)`,
    );
  }
  const levels = podCgroupLevels(podUid, containerId);
  const dirs = levels.map((_, i) => join(root, ...levels.slice(0, i + 1)));
  const made: string[] = [];
  for (const dir of dirs) {
    try {
      await mkdir(dir);
      made.push(dir);
    } catch (e) {
      if (code(e) === 'EEXIST') continue;
      await removeEmpty(made.reverse());
      if (code(e) === 'EACCES' || code(e) === 'EPERM' || code(e) === 'EROFS') {
        throw new NemuError(
          ControllerErrorCodes.RUN_NEEDS_ROOT,
          `cannot create the pod's cgroup under ${root} (${code(e)}): nemutator run needs root for it; run it with sudo`,
        );
      }
      throw new NemuError(ControllerErrorCodes.RUN_CGROUP, `cannot create the pod's cgroup ${dir}: ${code(e) ?? (e as Error).message}`);
    }
  }
  const dir = dirs[dirs.length - 1]!;
  return {
    dir,
    async remove() {
      await emptyCgroup(dir);
      await removeEmpty([...made].reverse());
    },
  };
}

async function pidsOf(dir: string): Promise<number[]> {
  const text = await readFile(join(dir, 'cgroup.procs'), 'utf8').catch(() => '');
  return text.split('\n').filter(Boolean).map(Number);
}

/** The launcher's rotation watcher (and anything the program left behind) goes with the pod. */
async function emptyCgroup(dir: string): Promise<void> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const pids = await pidsOf(dir);
    if (pids.length === 0 || Date.now() > deadline) return;
    if (existsSync(join(dir, 'cgroup.kill'))) await writeFile(join(dir, 'cgroup.kill'), '1').catch(() => undefined);
    else
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone already
        }
      }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Removes each directory that is empty now; shared levels another pod uses stay. */
async function removeEmpty(dirs: string[]): Promise<void> {
  for (const dir of dirs) {
    for (let attempt = 0; attempt < 50; attempt++) {
      try {
        await rmdir(dir);
        break;
      } catch (e) {
        // EBUSY right after the last process died: the kernel is still releasing it.
        if (code(e) !== 'EBUSY') break;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  }
}
