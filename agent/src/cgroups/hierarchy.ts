/**
 * Where each kind of counter lives under the cgroup root. cgroup v2 has one tree; v1 has one
 * tree per controller (mounted together or apart: `cpu,cpuacct`, or `cpu` and `cpuacct`),
 * and kubelet mirrors the same pod paths in each of them.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { ErrorCodes, NemuError } from '#common/errors.js';

export type CgroupVersionOption = 'auto' | 'v1' | 'v2';

export type CgroupLayout =
  | { version: 'v2'; root: string }
  | {
      version: 'v1';
      root: string;
      /** cpuacct.usage: CPU time. */
      cpuacct?: string;
      /** cpu.stat: CFS periods and throttling. */
      cpu?: string;
      memory?: string;
      blkio?: string;
      /** The hierarchy pods are discovered in (and cgroup.procs counted in). */
      walk: string;
    };

/** The first of the candidate mount names that exists under root. */
function firstExisting(root: string, names: string[]): string | undefined {
  for (const name of names) {
    const dir = join(root, name);
    if (existsSync(dir)) return dir;
  }
  return undefined;
}

/**
 * v2 when `<root>/cgroup.controllers` exists (or when asked for), else v1 with each
 * controller's hierarchy looked up by its usual mount names.
 */
export function detectCgroupLayout(root: string, version: CgroupVersionOption = 'auto'): CgroupLayout {
  const isV2 = version === 'v2' || (version === 'auto' && existsSync(join(root, 'cgroup.controllers')));
  if (isV2) return { version: 'v2', root };
  const cpuacct = firstExisting(root, ['cpu,cpuacct', 'cpuacct,cpu', 'cpuacct']);
  const cpu = firstExisting(root, ['cpu,cpuacct', 'cpuacct,cpu', 'cpu']);
  const memory = firstExisting(root, ['memory']);
  const blkio = firstExisting(root, ['blkio']);
  const walk = cpuacct ?? cpu ?? memory ?? firstExisting(root, ['pids', 'systemd']);
  if (walk === undefined) {
    throw new NemuError(
      ErrorCodes.CONFIG,
      `cgroupRoot ${root} holds neither cgroup v2 (no cgroup.controllers) nor v1 hierarchies (no cpu,cpuacct, cpuacct, cpu or memory directory); ` +
        'set cgroupRoot to where cgroups are mounted, usually /sys/fs/cgroup',
    );
  }
  return { version: 'v1', root, cpuacct, cpu, memory, blkio, walk };
}

/** The directory pods are discovered in. */
export function walkRoot(layout: CgroupLayout): string {
  return layout.version === 'v2' ? layout.root : layout.walk;
}
