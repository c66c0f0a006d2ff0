/**
 * Builds cgroup trees the way kubelet and the container runtimes lay them out on a node, as
 * plain files in a temp directory: v2 (one tree) or v1 (one tree per controller), systemd or
 * cgroupfs driver, containerd / CRI-O / docker names. Tests and the agent benchmark use it.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export type FixtureQos = 'guaranteed' | 'burstable' | 'besteffort';
export type FixtureRuntime = 'containerd' | 'crio' | 'docker';
export type FixtureDriver = 'systemd' | 'cgroupfs';

export interface FixtureCounters {
  cpuUsageUsec: number;
  nrPeriods: number;
  nrThrottled: number;
  throttledUsec: number;
  memoryUsageBytes: number;
  inactiveFileBytes: number;
  readBytes: number;
  writeBytes: number;
  pids: number[];
}

export interface FixtureContainer {
  id: string;
  runtime?: FixtureRuntime;
  counters?: Partial<FixtureCounters>;
  /** Files not to write (as on a node where a controller is not enabled). */
  omit?: string[];
}

export interface FixturePod {
  uid: string;
  qos: FixtureQos;
  containers: FixtureContainer[];
  /** CRI-O's conmon scope next to the containers (it must not be reported). */
  conmon?: boolean;
}

export interface FixtureTree {
  version: 'v1' | 'v2';
  driver: FixtureDriver;
  pods: FixturePod[];
  /** v1 only: the hierarchy directories (default `cpu,cpuacct`, `memory`, `blkio`). */
  v1Hierarchies?: string[];
  /** Where kubepods sits below the root (kind-style `kubelet.slice`), default the top. */
  parent?: string;
}

export const DEFAULT_COUNTERS: FixtureCounters = {
  cpuUsageUsec: 1_500_000,
  nrPeriods: 100,
  nrThrottled: 7,
  throttledUsec: 250_000,
  memoryUsageBytes: 64 * 1024 * 1024,
  inactiveFileBytes: 16 * 1024 * 1024,
  readBytes: 4096,
  writeBytes: 8192,
  pids: [101, 102],
};

/** The container's directory relative to the hierarchy root, as kubelet and the runtime name it. */
export function containerRelPath(tree: Pick<FixtureTree, 'driver' | 'parent'>, pod: FixturePod, c: FixtureContainer): string {
  const runtime = c.runtime ?? 'containerd';
  const top = tree.parent ? `/${tree.parent}` : '';
  if (tree.driver === 'systemd') {
    const uid = pod.uid.replace(/-/g, '_');
    const prefix = tree.parent ? `${tree.parent.replace(/\.slice$/, '')}-kubepods` : 'kubepods';
    const scope = { containerd: `cri-containerd-${c.id}.scope`, crio: `crio-${c.id}.scope`, docker: `docker-${c.id}.scope` }[runtime];
    const kubepods = `${top}/${prefix}.slice`;
    return pod.qos === 'guaranteed'
      ? `${kubepods}/${prefix}-pod${uid}.slice/${scope}`
      : `${kubepods}/${prefix}-${pod.qos}.slice/${prefix}-${pod.qos}-pod${uid}.slice/${scope}`;
  }
  const dir = runtime === 'crio' ? `crio-${c.id}` : c.id;
  return pod.qos === 'guaranteed' ? `${top}/kubepods/pod${pod.uid}/${dir}` : `${top}/kubepods/${pod.qos}/pod${pod.uid}/${dir}`;
}

const V2_SYSTEM_FILES: Record<string, string> = {
  'cgroup.controllers': 'cpuset cpu io memory hugetlb pids rdma misc\n',
  'cgroup.subtree_control': 'cpu io memory pids\n',
  'cgroup.procs': '1\n',
};

function v2Files(c: FixtureCounters): Record<string, string> {
  return {
    'cpu.stat':
      `usage_usec ${c.cpuUsageUsec}\nuser_usec ${Math.floor(c.cpuUsageUsec * 0.7)}\nsystem_usec ${Math.ceil(c.cpuUsageUsec * 0.3)}\n` +
      `core_sched.force_idle_usec 0\nnr_periods ${c.nrPeriods}\nnr_throttled ${c.nrThrottled}\nthrottled_usec ${c.throttledUsec}\n` +
      'nr_bursts 0\nburst_usec 0\n',
    'memory.current': `${c.memoryUsageBytes}\n`,
    'memory.stat':
      `anon ${c.memoryUsageBytes - c.inactiveFileBytes}\nfile ${c.inactiveFileBytes * 2}\nkernel 1048576\n` +
      `active_anon 4096\ninactive_anon ${c.memoryUsageBytes - c.inactiveFileBytes}\nactive_file ${c.inactiveFileBytes}\n` +
      `inactive_file ${c.inactiveFileBytes}\nunevictable 0\nslab_reclaimable 0\npgfault 1234\n`,
    'memory.max': 'max\n',
    'io.stat':
      c.readBytes + c.writeBytes === 0
        ? ''
        : `254:0 rbytes=${c.readBytes - 1000} wbytes=${c.writeBytes - 2000} rios=10 wios=20 dbytes=0 dios=0\n` +
          `8:16 rbytes=1000 wbytes=2000 rios=1 wios=2 dbytes=0 dios=0\n`,
    'cgroup.procs': c.pids.map((p) => `${p}\n`).join(''),
    'cgroup.controllers': 'cpu io memory pids\n',
    'pids.current': `${c.pids.length}\n`,
  };
}

function v1Files(c: FixtureCounters): Record<string, Record<string, string>> {
  const procs = c.pids.map((p) => `${p}\n`).join('');
  return {
    cpuacct: {
      'cpuacct.usage': `${c.cpuUsageUsec * 1000}\n`,
      'cpuacct.stat': 'user 100\nsystem 50\n',
      'cgroup.procs': procs,
    },
    cpu: {
      'cpu.stat': `nr_periods ${c.nrPeriods}\nnr_throttled ${c.nrThrottled}\nthrottled_time ${c.throttledUsec * 1000}\n`,
      'cpu.shares': '1024\n',
      'cgroup.procs': procs,
    },
    memory: {
      'memory.usage_in_bytes': `${c.memoryUsageBytes}\n`,
      'memory.stat':
        `cache ${c.inactiveFileBytes * 2}\nrss ${c.memoryUsageBytes - c.inactiveFileBytes}\ninactive_file ${c.inactiveFileBytes}\n` +
        `total_cache ${c.inactiveFileBytes * 2}\ntotal_rss ${c.memoryUsageBytes - c.inactiveFileBytes}\n` +
        `total_inactive_file ${c.inactiveFileBytes}\ntotal_active_file 0\n`,
      'cgroup.procs': procs,
    },
    blkio: {
      'blkio.throttle.io_service_bytes':
        `254:0 Read ${c.readBytes - 1000}\n254:0 Write ${c.writeBytes - 2000}\n254:0 Sync 0\n254:0 Async 0\n254:0 Discard 0\n254:0 Total ${c.readBytes + c.writeBytes - 3000}\n` +
        `8:16 Read 1000\n8:16 Write 2000\n8:16 Sync 0\n8:16 Async 0\n8:16 Discard 0\n8:16 Total 3000\nTotal ${c.readBytes + c.writeBytes}\n`,
      'cgroup.procs': procs,
    },
  };
}

async function writeAll(dir: string, files: Record<string, string>, omit: string[] = []): Promise<void> {
  await mkdir(dir, { recursive: true });
  await Promise.all(
    Object.entries(files)
      .filter(([name]) => !omit.includes(name))
      .map(([name, text]) => writeFile(join(dir, name), text)),
  );
}

/** Which controller's files a v1 hierarchy directory (`cpu,cpuacct`, `cpuacct`, …) holds. */
function controllersOf(hierarchy: string): string[] {
  return hierarchy.split(',');
}

/** Writes the tree under root; returns each container's relative path by id. */
export async function buildCgroupTree(root: string, tree: FixtureTree): Promise<Map<string, string>> {
  const paths = new Map<string, string>();
  const hierarchies = tree.version === 'v2' ? [''] : (tree.v1Hierarchies ?? ['cpu,cpuacct', 'memory', 'blkio']);
  if (tree.version === 'v2') await writeAll(root, V2_SYSTEM_FILES);
  for (const h of hierarchies) {
    await mkdir(join(root, h), { recursive: true });
    // Noise a walker must not descend into.
    await writeAll(join(root, h, 'system.slice', 'containerd.service'), { 'cgroup.procs': '1\n' });
    await writeAll(join(root, h, 'user.slice', 'user-0.slice'), { 'cgroup.procs': '' });
  }
  for (const pod of tree.pods) {
    for (const c of pod.containers) {
      const rel = containerRelPath(tree, pod, c);
      paths.set(c.id, rel);
      const counters = { ...DEFAULT_COUNTERS, ...c.counters };
      if (tree.version === 'v2') {
        await writeAll(join(root, rel), v2Files(counters), c.omit);
      } else {
        const byController = v1Files(counters);
        for (const h of hierarchies) {
          const files: Record<string, string> = { 'cgroup.procs': counters.pids.map((p) => `${p}\n`).join('') };
          for (const controller of controllersOf(h)) Object.assign(files, byController[controller] ?? {});
          await writeAll(join(root, h, rel), files, c.omit);
        }
      }
      const podDir = rel.slice(0, rel.lastIndexOf('/'));
      for (const h of hierarchies) await writeAll(join(root, h, podDir), { 'cgroup.procs': '' });
      if (pod.conmon) {
        const conmon = tree.driver === 'systemd' ? `crio-conmon-${c.id}.scope` : `crio-conmon-${c.id}`;
        for (const h of hierarchies) {
          await writeAll(join(root, h, podDir, conmon), tree.version === 'v2' ? v2Files(DEFAULT_COUNTERS) : { 'cgroup.procs': '99\n' });
        }
      }
    }
    if (pod.containers.length === 0) {
      // An empty pod still has its directory (kubelet makes it before the sandbox starts).
      const probe = containerRelPath(tree, pod, { id: '0'.repeat(64) });
      for (const h of hierarchies) await mkdir(join(root, h, probe.slice(0, probe.lastIndexOf('/'))), { recursive: true });
    }
  }
  return paths;
}

/** Rewrites one container's counters in place (the next collect sees them change). */
export async function updateCounters(root: string, tree: FixtureTree, pod: FixturePod, c: FixtureContainer, counters: Partial<FixtureCounters>): Promise<void> {
  const rel = containerRelPath(tree, pod, c);
  const full = { ...DEFAULT_COUNTERS, ...c.counters, ...counters };
  c.counters = full;
  if (tree.version === 'v2') {
    await writeAll(join(root, rel), v2Files(full), c.omit);
    return;
  }
  const byController = v1Files(full);
  for (const h of tree.v1Hierarchies ?? ['cpu,cpuacct', 'memory', 'blkio']) {
    const files: Record<string, string> = {};
    for (const controller of controllersOf(h)) Object.assign(files, byController[controller] ?? {});
    await writeAll(join(root, h, rel), files, c.omit);
  }
}
