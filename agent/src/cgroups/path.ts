/**
 * What a cgroup path says about the pod and container that own it. kubelet and the container
 * runtimes encode both in directory names; this is the one place that knows those names:
 *
 *   systemd driver  kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_>.slice/cri-containerd-<id>.scope
 *                   kubepods.slice/kubepods-pod<uid_>.slice/crio-<id>.scope            (Guaranteed: no QoS level)
 *   cgroupfs driver kubepods/besteffort/pod<uid>/<id>
 *                   kubepods/pod<uid>/crio-<id>                                           (Guaranteed)
 *
 * kubelet's `--cgroup-root` may put the tree lower (kind: `kubelet.slice/kubelet-kubepods.slice/
 * kubelet-kubepods-besteffort.slice/...`), and `/proc/<pid>/cgroup` seen from inside a cgroup
 * namespace starts with `/../..`, so the pod level is searched for, not expected at a depth.
 */

export type QosClass = 'guaranteed' | 'burstable' | 'besteffort';
export type ContainerRuntime = 'containerd' | 'crio' | 'docker' | 'unknown';

export interface CgroupPathInfo {
  /** Pod UID in its API form, with dashes. */
  podUid: string;
  qos: QosClass;
  /** Absent when the path is the pod's own level, above any container. */
  containerId?: string;
  runtime?: ContainerRuntime;
}

// A pod UID is a UUID (8-4-4-4-12) or, for static pods, a 32-hex config hash; the systemd
// driver writes its dashes as underscores because `-` is systemd's slice separator.
const UID = '([0-9a-f]{8}[-_]?[0-9a-f]{4}[-_]?[0-9a-f]{4}[-_]?[0-9a-f]{4}[-_]?[0-9a-f]{12})';
const SYSTEMD_POD = new RegExp(`^(?:[a-z0-9_]+-)*kubepods(?:-(burstable|besteffort))?-pod${UID}\\.slice$`);
const CGROUPFS_POD = new RegExp(`^pod${UID}$`);
const CGROUPFS_KUBEPODS = /^(?:.*-)?kubepods$/;
const CGROUPFS_QOS = /^(burstable|besteffort)$/;

const ID = '([0-9a-f]{64})';
const CONTAINER_PATTERNS: Array<[RegExp, ContainerRuntime]> = [
  [new RegExp(`^cri-containerd-${ID}\\.scope$`), 'containerd'],
  [new RegExp(`^crio-${ID}(?:\\.scope)?$`), 'crio'],
  [new RegExp(`^docker-${ID}\\.scope$`), 'docker'],
  // cgroupfs driver: containerd names the directory by the bare id (so did dockershim; the
  // path cannot tell them apart, and containerd is by far the common case today).
  [new RegExp(`^${ID}$`), 'containerd'],
];
// CRI-O's monitor process lives next to the containers; it is not one of the pod's containers.
const CRIO_CONMON = /^crio-conmon-[0-9a-f]{64}(?:\.scope)?$/;

/** The container segment's id and runtime, or undefined if the name is not a container's. */
export function parseContainerSegment(segment: string): { containerId: string; runtime: ContainerRuntime } | undefined {
  if (CRIO_CONMON.test(segment)) return undefined;
  for (const [pattern, runtime] of CONTAINER_PATTERNS) {
    const m = pattern.exec(segment);
    if (m) return { containerId: m[1]!, runtime };
  }
  return undefined;
}

/** The pod level's UID and QoS, given the segment and the one above it (cgroupfs puts QoS there). */
export function parsePodSegment(segment: string, parent: string | undefined): { podUid: string; qos: QosClass } | undefined {
  const systemd = SYSTEMD_POD.exec(segment);
  if (systemd) return { podUid: normalizeUid(systemd[2]!), qos: qosOf(systemd[1]) };
  const cgroupfs = CGROUPFS_POD.exec(segment);
  if (cgroupfs && parent !== undefined) {
    if (CGROUPFS_QOS.test(parent)) return { podUid: normalizeUid(cgroupfs[1]!), qos: parent as QosClass };
    if (CGROUPFS_KUBEPODS.test(parent)) return { podUid: normalizeUid(cgroupfs[1]!), qos: 'guaranteed' };
  }
  return undefined;
}

/**
 * Pod UID, QoS class, container id and runtime from a cgroup path (relative to the cgroup root,
 * with or without a leading slash), or undefined if the path is not inside a pod. A path below
 * a container (a process that made its own sub-cgroup) still names that container. A path that
 * is a pod's but not a container's (CRI-O's conmon) is undefined: no workload runs there.
 */
export function parseCgroupPath(relPath: string): CgroupPathInfo | undefined {
  const segments = relPath.split('/').filter((s) => s !== '' && s !== '.' && s !== '..');
  for (let i = 0; i < segments.length; i++) {
    const pod = parsePodSegment(segments[i]!, segments[i - 1]);
    if (!pod) continue;
    const next = segments[i + 1];
    if (next === undefined) return pod;
    const container = parseContainerSegment(next);
    if (!container) return undefined;
    return { ...pod, ...container };
  }
  return undefined;
}

function normalizeUid(raw: string): string {
  const hex = raw.replace(/[-_]/g, '');
  // Static pods' UIDs are a bare 32-hex hash in the API too; only UUIDs get their dashes back.
  if (!/[-_]/.test(raw)) return hex;
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function qosOf(level: string | undefined): QosClass {
  return level === 'burstable' || level === 'besteffort' ? level : 'guaranteed';
}
