/**
 * Finds the pods and containers on this node by reading the kubepods tree level by level
 * (kubepods → QoS → pod → container), never the whole cgroup hierarchy: a node has thousands
 * of system cgroups and this runs every report interval.
 */
import type { Dirent } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { parseContainerSegment, parsePodSegment, type ContainerRuntime, type QosClass } from './path.ts';

export interface DiscoveredContainer {
  id: string;
  runtime: ContainerRuntime;
  /** Relative to the hierarchy root, with a leading slash, as `/proc/<pid>/cgroup` writes it. */
  relPath: string;
}

export interface DiscoveredPod {
  uid: string;
  qos: QosClass;
  relPath: string;
  containers: DiscoveredContainer[];
}

const KUBEPODS = /^(?:kubepods|kubepods\.slice|.*-kubepods\.slice)$/;
const QOS_LEVEL = /^(?:burstable|besteffort|(?:.*-)?kubepods-(?:burstable|besteffort)\.slice)$/;
// Where kubelet's --cgroup-root usually puts kubepods when it is not at the top (kind, k3s).
const NESTED_PARENTS = /^(?:kubelet|kubelet\.slice|.*\.slice)$/;

/** Sub-directories of dir; a directory removed meanwhile (a pod just deleted) has none. */
async function subdirs(dir: string): Promise<string[]> {
  let entries: Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  return entries.filter((e) => e.isDirectory()).map((e) => e.name);
}

/**
 * The kubepods directories under root, relative to it: `kubepods.slice` or `kubepods` at the
 * top, else one level down (`kubelet.slice/kubelet-kubepods.slice`).
 */
export async function findKubepods(root: string): Promise<string[]> {
  const top = await subdirs(root);
  const direct = top.filter((name) => KUBEPODS.test(name));
  if (direct.length > 0) return direct;
  const nested: string[] = [];
  for (const parent of top.filter((name) => NESTED_PARENTS.test(name))) {
    for (const name of await subdirs(join(root, parent))) {
      if (KUBEPODS.test(name)) nested.push(`${parent}/${name}`);
    }
  }
  return nested;
}

/** Pods and their containers under the given kubepods directories (relative to root). */
export async function discoverPods(root: string, kubepodsDirs: string[]): Promise<DiscoveredPod[]> {
  const podDirs: Array<{ relPath: string; name: string; parent: string }> = [];
  for (const kubepods of kubepodsDirs) {
    const kubepodsName = kubepods.slice(kubepods.lastIndexOf('/') + 1);
    for (const name of await subdirs(join(root, kubepods))) {
      if (QOS_LEVEL.test(name)) {
        for (const podName of await subdirs(join(root, kubepods, name))) {
          podDirs.push({ relPath: `${kubepods}/${name}/${podName}`, name: podName, parent: name });
        }
      } else {
        podDirs.push({ relPath: `${kubepods}/${name}`, name, parent: kubepodsName });
      }
    }
  }
  const pods = await Promise.all(
    podDirs.map(async ({ relPath, name, parent }): Promise<DiscoveredPod | undefined> => {
      const pod = parsePodSegment(name, parent);
      if (!pod) return undefined;
      const containers: DiscoveredContainer[] = [];
      for (const child of await subdirs(join(root, relPath))) {
        const container = parseContainerSegment(child);
        if (container) containers.push({ id: container.containerId, runtime: container.runtime, relPath: `/${relPath}/${child}` });
      }
      return { uid: pod.podUid, qos: pod.qos, relPath: `/${relPath}`, containers };
    }),
  );
  return pods.filter((p): p is DiscoveredPod => p !== undefined);
}
