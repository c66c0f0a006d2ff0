/**
 * Finds the pods and containers on this node by reading the kubepods tree level by level
 * (kubepods → QoS → pod → container), never the whole cgroup hierarchy: a node has thousands
 * of system cgroups and this runs every report interval.
 */
import { readdirSync } from 'node:fs';
import { setImmediate as yieldToLoop } from 'node:timers/promises';

import { type ContainerRuntime, parseContainerSegment, parsePodSegment, type QosClass } from './path.ts';

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

const PODS_PER_TURN = 50;

/**
 * Entry names of dir; a directory removed meanwhile (a pod just deleted) has none. Names only,
 * no stat: at every level the name patterns alone tell sub-cgroups from the files next to them
 * (`cgroup.procs` never looks like a pod or a container). Synchronous like the counter reads:
 * a readdir of a kernfs directory takes microseconds; callers yield between pods.
 */
function entries(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/**
 * The kubepods directories under root, relative to it: `kubepods.slice` or `kubepods` at the
 * top, else one level down (`kubelet.slice/kubelet-kubepods.slice`).
 */
export async function findKubepods(root: string): Promise<string[]> {
  const top = entries(root);
  const direct = top.filter((name) => KUBEPODS.test(name));
  if (direct.length > 0) return direct;
  const nested: string[] = [];
  for (const parent of top.filter((name) => NESTED_PARENTS.test(name))) {
    for (const name of entries(`${root}/${parent}`)) {
      if (KUBEPODS.test(name)) nested.push(`${parent}/${name}`);
    }
  }
  return nested;
}

/** Pods and their containers under the given kubepods directories (relative to root). */
export async function discoverPods(root: string, kubepodsDirs: string[]): Promise<DiscoveredPod[]> {
  const pods: DiscoveredPod[] = [];
  const visit = (relPath: string, name: string, parent: string): void => {
    const pod = parsePodSegment(name, parent);
    if (!pod) return;
    const containers: DiscoveredContainer[] = [];
    for (const child of entries(`${root}/${relPath}`)) {
      const container = parseContainerSegment(child);
      if (container) containers.push({ id: container.containerId, runtime: container.runtime, relPath: `/${relPath}/${child}` });
    }
    pods.push({ uid: pod.podUid, qos: pod.qos, relPath: `/${relPath}`, containers });
  };
  let visited = 0;
  for (const kubepods of kubepodsDirs) {
    const kubepodsName = kubepods.slice(kubepods.lastIndexOf('/') + 1);
    for (const name of entries(`${root}/${kubepods}`)) {
      if (QOS_LEVEL.test(name)) {
        for (const podName of entries(`${root}/${kubepods}/${name}`)) {
          if (++visited % PODS_PER_TURN === 0) await yieldToLoop();
          visit(`${kubepods}/${name}/${podName}`, podName, name);
        }
      } else {
        if (++visited % PODS_PER_TURN === 0) await yieldToLoop();
        visit(`${kubepods}/${name}`, name, kubepodsName);
      }
    }
  }
  return pods;
}
