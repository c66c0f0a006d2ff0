/**
 * Taking a profile: validate the request, find the pod's node (the pod object in a cluster,
 * else the agents' reports), send the capture to that node's agent over the fleet link, keep
 * the result in the store, and audit who profiled what.
 */
import { CoreV1Api, type KubeConfig, type V1Pod } from '@kubernetes/client-node';

import { ErrorCodes, NemuError } from '#common/errors.js';
import type { Logger } from '#common/log.js';

import type { FleetHub } from '../fleet/hub.ts';
import type { FleetRegistry } from '../fleet/registry.ts';
import type { Identity } from '../server/router.ts';
import { fromWire, type StoredProfile } from './model.ts';
import { newProfileId, type ProfileStore } from './store.ts';

export const MAX_SECONDS = 60;
export const MAX_HZ = 199;
export const DEFAULT_SECONDS = 30;
export const DEFAULT_HZ = 49;

export interface ProfileRequestBody {
  namespace?: string;
  pod?: string;
  container?: string;
  seconds?: number;
  hz?: number;
  /** Local mode: one process on the controller's own node. */
  pid?: number;
  /** With pid: the node (default: the only connected one). */
  node?: string;
}

export interface CaptureSpec {
  namespace: string;
  pod: string;
  container: string;
  seconds: number;
  hz: number;
  pid: number;
  node: string;
}

function bad(message: string): NemuError {
  return new NemuError(ErrorCodes.BAD_REQUEST, message, { status: 400 });
}

const NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

export function parseProfileRequest(body: unknown): CaptureSpec {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw bad('expected a JSON object {namespace, pod, container?, seconds?, hz?}');
  const b = body as ProfileRequestBody;
  const int = (v: unknown, name: string, def: number, max: number): number => {
    if (v === undefined || v === null) return def;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max) throw bad(`${name} must be an integer from 1 to ${max}, got ${JSON.stringify(v)}`);
    return v;
  };
  const seconds = int(b.seconds, 'seconds', DEFAULT_SECONDS, MAX_SECONDS);
  const hz = int(b.hz, 'hz', DEFAULT_HZ, MAX_HZ);
  const str = (v: unknown, name: string): string => {
    if (v === undefined || v === null || v === '') return '';
    if (typeof v !== 'string' || v.length > 253 || !NAME.test(v)) throw bad(`${name} must be a Kubernetes name, got ${JSON.stringify(v)}`);
    return v;
  };
  const pid = b.pid === undefined || b.pid === null ? 0 : int(b.pid, 'pid', 0, 2 ** 31 - 1);
  const spec: CaptureSpec = {
    namespace: str(b.namespace, 'namespace'),
    pod: str(b.pod, 'pod'),
    container: str(b.container, 'container'),
    seconds,
    hz,
    pid,
    node: typeof b.node === 'string' ? b.node : '',
  };
  if (pid === 0 && (spec.namespace === '' || spec.pod === '')) throw bad('namespace and pod are required (or pid, in local mode)');
  return spec;
}

/** Status of an agent's error by its code, so the caller sees 404/409/429/503 rather than 500. */
function statusOf(code: string): number {
  if (code === ErrorCodes.PROFILER_TARGET) return 404;
  if (code === ErrorCodes.PROFILER_BUSY) return 429;
  if (code === ErrorCodes.PROFILER_LIMIT || code === ErrorCodes.BAD_REQUEST) return 400;
  if (code.startsWith('NEMU_ERR_PROFILER_')) return 503;
  return 502;
}

interface PodLocation {
  node: string;
  podUid: string;
  /** What the agent matches: the container id when the pod object names it, else the name. */
  container: string;
}

export interface ProfileServiceOptions {
  hub: FleetHub;
  registry: FleetRegistry;
  store: ProfileStore;
  log: Logger;
  kube?: KubeConfig;
  /** Extra time for the agent past the window (start-up, symbolization, queueing). */
  graceMs?: number;
}

export class ProfileService {
  private readonly core: CoreV1Api | undefined;

  constructor(private readonly opts: ProfileServiceOptions) {
    this.core = opts.kube?.makeApiClient(CoreV1Api);
  }

  /** The pod's node and uid: from the API server in a cluster, else from the agents' reports. */
  async locate(namespace: string, pod: string, container: string): Promise<PodLocation> {
    if (this.core) {
      let obj: V1Pod;
      try {
        obj = await this.core.readNamespacedPod({ namespace, name: pod });
      } catch (e) {
        const code = (e as { code?: number }).code;
        if (code === 404) throw new NemuError(ErrorCodes.NOT_FOUND, `pod ${namespace}/${pod} not found`, { status: 404 });
        throw new NemuError(ErrorCodes.INTERNAL, `cannot read pod ${namespace}/${pod}: ${(e as Error).message}`, { status: 502 });
      }
      const node = obj.spec?.nodeName ?? '';
      if (!node) throw new NemuError(ErrorCodes.CONFLICT, `pod ${namespace}/${pod} is not scheduled on a node yet`, { status: 409 });
      if (container && !(obj.spec?.containers ?? []).some((c) => c.name === container)) {
        throw new NemuError(
          ErrorCodes.NOT_FOUND,
          `pod ${namespace}/${pod} has no container ${container} (containers: ${(obj.spec?.containers ?? []).map((c) => c.name).join(', ')})`,
          { status: 404 },
        );
      }
      const status = [...(obj.status?.containerStatuses ?? [])].find((s) => s.name === container);
      const id = status?.containerID?.replace(/^[a-z]+:\/\//, '') ?? '';
      return { node, podUid: obj.metadata?.uid ?? '', container: container ? id || container : '' };
    }
    for (const n of this.opts.registry.entries()) {
      const p = n.report?.pods?.find((x) => x.namespace === namespace && x.name === pod);
      if (p) return { node: n.name, podUid: p.uid ?? '', container };
    }
    throw new NemuError(
      ErrorCodes.NOT_FOUND,
      `pod ${namespace}/${pod} is not on any node with an agent (no cluster configured: pods are found in the agents' reports)`,
      { status: 404 },
    );
  }

  private pidNode(node: string): string {
    if (node) return node;
    const connected = this.opts.registry.entries().filter((n) => n.connected);
    if (connected.length !== 1) throw bad(`pid profiling needs node when ${connected.length} agents are connected`);
    return connected[0]!.name;
  }

  async capture(spec: CaptureSpec, user: Identity | undefined, mode: StoredProfile['mode'] = 'on-demand'): Promise<StoredProfile> {
    if (spec.pid && this.core) {
      // In a cluster a pid names a host process (kubelet, containerd, another tenant's
      // program): profiles are of pods only, which RBAC can scope to a namespace.
      throw new NemuError(ErrorCodes.BAD_REQUEST, 'pid profiles are for local mode; in a cluster, profile a pod: {namespace, pod, container?}', {
        status: 400,
      });
    }
    if (spec.pid) spec = { ...spec, namespace: '', pod: '', container: '' };
    const loc = spec.pid ? { node: this.pidNode(spec.node), podUid: '', container: '' } : await this.locate(spec.namespace, spec.pod, spec.container);
    const id = newProfileId();
    const who = user?.username ?? mode;
    const target = {
      node: loc.node,
      namespace: spec.namespace,
      pod: spec.pod,
      podUid: loc.podUid,
      container: spec.container,
      ...(spec.pid ? { pid: spec.pid } : {}),
    };
    this.opts.log.info({ audit: true, profile: id, user: who, groups: user?.groups, target, seconds: spec.seconds, hz: spec.hz, mode }, 'profile requested');
    const result = await this.opts.hub.command(
      loc.node,
      {
        profile: {
          podUid: loc.podUid,
          namespace: spec.namespace,
          pod: spec.pod,
          container: loc.container,
          seconds: spec.seconds,
          hz: spec.hz,
          pid: spec.pid,
          profileId: id,
        },
      },
      spec.seconds * 1000 + (this.opts.graceMs ?? 10 * 60_000),
    );
    if (result.error) {
      const code = result.error.code ?? ErrorCodes.INTERNAL;
      this.opts.log.warn({ audit: true, profile: id, user: who, code, message: result.error.message }, 'profile failed');
      throw new NemuError(code, `the agent on ${loc.node}: ${result.error.message ?? 'failed'}`, { status: statusOf(code) });
    }
    if (!result.profile) throw new NemuError(ErrorCodes.INTERNAL, `the agent on ${loc.node} answered without a profile`, { status: 502 });
    const stored: StoredProfile = {
      id,
      createdAt: new Date().toISOString(),
      requestedBy: who,
      mode,
      target,
      seconds: spec.seconds,
      hz: spec.hz,
      data: fromWire(result.profile),
    };
    await this.opts.store.put(stored);
    this.opts.log.info({ audit: true, profile: id, user: who, samples: stored.data.samples.length }, 'profile stored');
    return stored;
  }
}
