/**
 * Which pod and container a process belongs to, from `/proc/<pid>/cgroup`. The secrets socket
 * uses it on the peer pid of a connection; the kernel wrote the file, so the caller cannot fake it.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

import { type CgroupPathInfo, parseCgroupPath } from './path.ts';

/** Controllers whose v1 hierarchy kubelet always creates pod cgroups in, most reliable first. */
const V1_PREFERRED = ['cpu', 'cpuacct', 'memory', 'pids', 'name=systemd'];

/**
 * The pod of the process described by a `/proc/<pid>/cgroup` text: the v2 line (`0::/path`)
 * when it names a pod, else the v1 lines (`N:cpu,cpuacct:/path`), preferring the cpu and
 * memory hierarchies kubelet always manages. Undefined when no line is a pod container's.
 */
export function podOfProcCgroup(text: string): (CgroupPathInfo & { cgroupPath: string }) | undefined {
  const v1: Array<{ controllers: string[]; path: string }> = [];
  for (const line of text.split('\n')) {
    const first = line.indexOf(':');
    const second = line.indexOf(':', first + 1);
    if (first < 0 || second < 0) continue;
    const id = line.slice(0, first);
    const controllers = line.slice(first + 1, second);
    const path = line.slice(second + 1);
    if (id === '0' && controllers === '') {
      const info = parseCgroupPath(path);
      if (info?.containerId !== undefined) return { ...info, cgroupPath: path };
    } else {
      v1.push({ controllers: controllers.split(','), path });
    }
  }
  const rank = (controllers: string[]): number => {
    const ranks = controllers.map((c) => V1_PREFERRED.indexOf(c)).filter((r) => r >= 0);
    return ranks.length > 0 ? Math.min(...ranks) : V1_PREFERRED.length;
  };
  v1.sort((a, b) => rank(a.controllers) - rank(b.controllers));
  for (const { path } of v1) {
    const info = parseCgroupPath(path);
    if (info?.containerId !== undefined) return { ...info, cgroupPath: path };
  }
  return undefined;
}

/**
 * The pod and container of a running process, or undefined if it runs outside any pod or has
 * exited (ENOENT/ESRCH are answers here, not errors).
 */
export async function podOfPid(pid: number, procRoot = '/proc'): Promise<(CgroupPathInfo & { cgroupPath: string }) | undefined> {
  let text: string;
  try {
    text = await readFile(join(procRoot, String(pid), 'cgroup'), 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ESRCH') return undefined;
    throw err;
  }
  return podOfProcCgroup(text);
}
