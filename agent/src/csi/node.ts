/**
 * The Node service's work: NodePublishVolume bind-mounts the agent's socket directory,
 * read-only, onto the target kubelet names for a pod's inline `csi` volume; NodeUnpublishVolume
 * undoes it. Both are idempotent, as the CSI spec requires, and decide from the kernel's
 * mountinfo, not from memory, so an agent restart loses nothing. Calls on one target are
 * serialized (kubelet retries a slow call while the first one still runs).
 */
import { lstat, mkdir, realpath, rmdir } from 'node:fs/promises';
import { dirname, isAbsolute, normalize } from 'node:path';

import type { Logger } from '#common/log.js';

import { CsiError } from './errors.ts';
import { type Mounter, MountError } from './mounter.ts';
import { locate, type MountEntry, mountsAt } from './mountinfo.ts';

/** The volume_context keys kubelet adds when the CSIDriver has podInfoOnMount (pkg/volume/csi/csi_mounter.go, podAttributes). */
export const PodInfoKeys = {
  name: 'csi.storage.k8s.io/pod.name',
  namespace: 'csi.storage.k8s.io/pod.namespace',
  uid: 'csi.storage.k8s.io/pod.uid',
  serviceAccount: 'csi.storage.k8s.io/serviceAccount.name',
  ephemeral: 'csi.storage.k8s.io/ephemeral',
} as const;

/** The fields of csi.v1.NodePublishVolumeRequest this driver reads, as wire.ts decodes them (snake_case, the oneof named in access_type). */
export interface PublishRequest {
  volume_id?: string;
  target_path?: string;
  readonly?: boolean;
  volume_capability?: { access_type?: string; mount?: unknown; block?: unknown; access_mode?: { mode?: string } | null } | null;
  volume_context?: Record<string, string>;
}

export interface UnpublishRequest {
  volume_id?: string;
  target_path?: string;
}

export interface PodInfo {
  name?: string;
  namespace?: string;
  uid?: string;
  serviceAccount?: string;
}

export interface NodeVolumesOptions {
  /** The directory bind-mounted into pods: the one holding the agent's secrets socket. */
  sourceDir: string;
  /** `<kubelet root>/pods`: every target path kubelet gives lies under it; others are refused. */
  podsDir: string;
  mounter: Mounter;
  mountInfo: () => Promise<MountEntry[]>;
  log: Logger;
}

/** Whether a publish found the target already done (kubelet retried) or mounted it now. */
export type PublishOutcome = 'mounted' | 'already-mounted' | 'made-read-only';
export type UnpublishOutcome = 'unmounted' | 'not-mounted';

const bad = (message: string) => new CsiError('BAD_REQUEST', message);

export function podInfo(context: Record<string, string> | undefined): PodInfo {
  const c = context ?? {};
  return { name: c[PodInfoKeys.name], namespace: c[PodInfoKeys.namespace], uid: c[PodInfoKeys.uid], serviceAccount: c[PodInfoKeys.serviceAccount] };
}

export class NodeVolumes {
  private readonly busy = new Map<string, Promise<unknown>>();

  constructor(private readonly o: NodeVolumesOptions) {}

  /** The checks of NodePublishVolume; the target path, valid, is returned. */
  validatePublish(req: PublishRequest): string {
    if (!req.volume_id) throw bad('volume_id is required');
    const target = this.checkTarget(req.target_path);
    const cap = req.volume_capability;
    if (!cap) throw bad('volume_capability is required');
    if (!cap.access_mode?.mode || cap.access_mode.mode === 'UNKNOWN') throw bad('volume_capability.access_mode is required');
    if (cap.access_type !== 'mount' || !cap.mount)
      throw bad('volume_capability must have access type mount: csi.nemutator.io publishes a directory, not a block device');
    const ephemeral = req.volume_context?.[PodInfoKeys.ephemeral];
    if (ephemeral !== 'true') {
      throw bad(
        `csi.nemutator.io serves only ephemeral inline volumes (volume_context ${PodInfoKeys.ephemeral} is ${ephemeral === undefined ? 'missing' : JSON.stringify(ephemeral)}): ` +
          "declare it as a pod's inline csi volume, and keep podInfoOnMount: true on the CSIDriver object",
      );
    }
    if (req.readonly !== true) throw bad("csi.nemutator.io volumes are read-only: set readOnly: true on the pod's csi volume");
    return target;
  }

  validateUnpublish(req: UnpublishRequest): string {
    if (!req.volume_id) throw bad('volume_id is required');
    return this.checkTarget(req.target_path);
  }

  async publish(req: PublishRequest): Promise<PublishOutcome> {
    const target = this.validatePublish(req);
    return this.serialized(target, () => this.mountSource(target));
  }

  async unpublish(req: UnpublishRequest): Promise<UnpublishOutcome> {
    const target = this.validateUnpublish(req);
    return this.serialized(target, () => this.unmountTarget(target));
  }

  private checkTarget(path: string | undefined): string {
    if (!path) throw bad('target_path is required');
    if (!isAbsolute(path) || path.includes('\0')) throw bad(`target_path must be an absolute path, got ${JSON.stringify(path)}`);
    const target = normalize(path).replace(/(.)\/+$/, '$1');
    if (!target.startsWith(this.o.podsDir + '/'))
      throw bad(`target_path ${JSON.stringify(path)} is not under kubelet's pods directory ${this.o.podsDir} (agent setting csiKubeletDir)`);
    return target;
  }

  /**
   * The real path of `path` (target_path or its deepest existing ancestor), refused unless it is
   * under the real pods directory: the name was checked, but a symbolic link on the way
   * (`…/volumes/kubernetes.io~csi/v -> /etc`) would take the mount, the mkdir or the rmdir
   * outside it.
   */
  private async realUnderPods(path: string, target: string): Promise<string> {
    const real = await io(`cannot resolve target_path ${target}`, () => realpath(path));
    const pods = await io(`cannot resolve kubelet's pods directory ${this.o.podsDir}`, () => realpath(this.o.podsDir));
    if (real !== pods && !real.startsWith(pods + '/')) {
      throw bad(`target_path ${target} leads to ${real} through a symbolic link, outside kubelet's pods directory ${pods}: refused`);
    }
    return real;
  }

  private async serialized<T>(target: string, work: () => Promise<T>): Promise<T> {
    const before = this.busy.get(target) ?? Promise.resolve();
    const mine = before.catch(() => undefined).then(work);
    this.busy.set(target, mine);
    try {
      return await mine;
    } finally {
      if (this.busy.get(target) === mine) this.busy.delete(target);
    }
  }

  private async mountSource(target: string): Promise<PublishOutcome> {
    await io(`cannot create the socket directory ${this.o.sourceDir}`, () => mkdir(this.o.sourceDir, { recursive: true, mode: 0o755 }));
    const source = await io(`cannot resolve ${this.o.sourceDir}`, () => realpath(this.o.sourceDir));
    // Checked before mkdir too: a symbolic link on the way must not create directories elsewhere.
    await this.realUnderPods(await io(`cannot inspect target_path ${target}`, () => existingAncestor(target)), target);
    await io(`cannot create target_path ${target}`, () => mkdir(target, { recursive: true, mode: 0o750 }));
    // mountinfo names mount points by their real path (kubelet's root directory may be a symlink).
    const at = await this.realUnderPods(target, target);
    const entries = await this.o.mountInfo();
    const top = mountsAt(entries, at).at(-1);
    if (top) {
      const want = locate(entries, source);
      if (!want || top.device !== want.device || top.root !== want.root) {
        throw new CsiError(
          'TARGET_BUSY',
          `target_path ${target} is already mounted from ${top.source} (${top.fsType} ${top.root}), not from the agent's socket directory ${source}; unpublish it first`,
        );
      }
      if (top.options.includes('ro')) return 'already-mounted';
      await mountStep(() => this.o.mounter.remountReadOnly(at));
      return 'made-read-only';
    }
    await mountStep(() => this.o.mounter.bind(source, at));
    try {
      await mountStep(() => this.o.mounter.remountReadOnly(at));
    } catch (e) {
      // Never leave the socket directory mounted read-write in a pod.
      await this.o.mounter
        .unmount(at)
        .catch((u: unknown) => this.o.log.error({ target, err: String(u) }, 'csi: cannot undo a bind mount whose read-only remount failed'));
      throw e;
    }
    return 'mounted';
  }

  private async unmountTarget(target: string): Promise<UnpublishOutcome> {
    const stat = await lstat(target).catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? undefined : Promise.reject(e)));
    if (!stat) return 'not-mounted'; // nothing can be mounted on a path that does not exist
    if (!stat.isDirectory())
      throw new CsiError('MOUNT', `target_path ${target} is not a directory; csi.nemutator.io creates only directories and leaves this one alone`);
    const at = await this.realUnderPods(target, target);
    let outcome: UnpublishOutcome = 'not-mounted';
    // Mounts can be stacked (a publish interrupted and retried); take them all off, boundedly.
    for (let i = 0; i < 8 && mountsAt(await this.o.mountInfo(), at).length > 0; i++) {
      await mountStep(() => this.o.mounter.unmount(at));
      outcome = 'unmounted';
    }
    if (mountsAt(await this.o.mountInfo(), at).length > 0) throw new CsiError('MOUNT', `target_path ${target} is still mounted after 8 unmounts`);
    await io(`cannot remove target_path ${target}`, () => rmdir(at));
    return outcome;
  }
}

/** The deepest ancestor of `path` (or itself) that exists. */
async function existingAncestor(path: string): Promise<string> {
  for (let p = path; ; p = dirname(p)) {
    const found = await lstat(p).then(
      () => true,
      (e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? false : Promise.reject(e)),
    );
    if (found || p === dirname(p)) return p;
  }
}

async function mountStep(step: () => Promise<void>): Promise<void> {
  try {
    await step();
  } catch (e) {
    throw e instanceof MountError ? new CsiError('MOUNT', e.message) : e;
  }
}

async function io<T>(what: string, op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new CsiError('MOUNT', `${what}: ${err.code ?? err.message}`, { cause: e });
  }
}
