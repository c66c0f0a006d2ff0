/**
 * What to sample: a pod's containers as cgroup v2 directories (the kernel filters samples by
 * their cgroup ids), or one process in local mode; and, during a capture, which processes
 * live in those directories (their maps must be read while they run).
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

import { ErrorCodes, NemuError } from '#common/errors.js';

import { discoverPods, findKubepods } from '../cgroups/discovery.ts';
import { type CgroupVersionOption, detectCgroupLayout } from '../cgroups/hierarchy.ts';
import { podOfProcCgroup } from '../cgroups/proc.ts';

export interface ContainerTarget {
  id: string;
  /** Container name when the agent knows it (NodeReport names), else ''. */
  name: string;
  /** Absolute cgroup v2 directory. */
  dir: string;
}

export interface PodTarget {
  podUid: string;
  containers: ContainerTarget[];
}

/** Container id → name for a pod uid (the agent's report knows names when it has a pod source). */
export type ContainerNames = (podUid: string) => Record<string, string> | undefined;

export interface ResolveOptions {
  cgroupRoot: string;
  cgroupVersion?: CgroupVersionOption;
  names?: ContainerNames;
}

function targetError(message: string, status = 404): NemuError {
  return new NemuError(ErrorCodes.PROFILER_TARGET, message, { status });
}

/** The cgroup v2 root, or a clear error on a v1-only node (cgroupid() needs v2). */
export function v2Root(opts: ResolveOptions): string {
  const layout = detectCgroupLayout(opts.cgroupRoot, opts.cgroupVersion ?? 'auto');
  if (layout.version !== 'v2') {
    throw targetError(
      `cgroupRoot ${opts.cgroupRoot} is cgroup v1: the profiler filters by cgroup v2 id; on a hybrid host set cgroupRoot to the unified mount (/sys/fs/cgroup/unified)`,
      503,
    );
  }
  return layout.root;
}

/**
 * pod uid → its containers' cgroup directories. `container` selects one, by name (when the
 * agent knows names) or by container id (full, or a prefix of at least 12 characters).
 */
export async function resolvePod(podUid: string, container: string, opts: ResolveOptions): Promise<PodTarget> {
  const root = v2Root(opts);
  const pods = await discoverPods(root, await findKubepods(root));
  const pod = pods.find((p) => p.uid === podUid);
  if (pod === undefined) throw targetError(`pod ${podUid} has no cgroup on this node (under ${root}); it may have moved or ended`);
  const names = opts.names?.(podUid) ?? {};
  const all = pod.containers.map((c) => ({ id: c.id, name: names[c.id] ?? '', dir: join(root, c.relPath) }));
  if (all.length === 0) throw targetError(`pod ${podUid} has no running container on this node`);
  if (container === '') return { podUid, containers: all };
  const chosen = all.filter((c) => c.name === container || c.id === container || (container.length >= 12 && c.id.startsWith(container)));
  if (chosen.length === 0) {
    const known = all.map((c) => c.name || c.id.slice(0, 12)).join(', ');
    throw targetError(`pod ${podUid} has no container ${container} on this node (containers: ${known})`);
  }
  return { podUid, containers: chosen };
}

/** Container of a process, as `<pod uid>/<container id prefix>`, or '' outside pods. */
export async function containerOfPid(pid: number, procRoot: string): Promise<string> {
  try {
    const info = podOfProcCgroup(await readFile(join(procRoot, String(pid), 'cgroup'), 'utf8'));
    return info?.containerId ? `${info.podUid ?? ''}/${info.containerId.slice(0, 12)}` : '';
  } catch {
    return '';
  }
}

/** Every process (tgid) in the directories and below them. */
export async function pidsIn(dirs: readonly string[]): Promise<number[]> {
  const pids = new Set<number>();
  const walk = async (dir: string, depth: number): Promise<void> => {
    const text = await readFile(join(dir, 'cgroup.procs'), 'utf8').catch(() => '');
    for (const l of text.split('\n')) if (l !== '') pids.add(Number(l));
    if (depth > 4) return;
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
    for (const e of entries) if (e.isDirectory()) await walk(join(dir, e.name), depth + 1);
  };
  for (const d of dirs) await walk(d, 0);
  return [...pids];
}
