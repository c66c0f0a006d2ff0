// The kubelet's part for tests, with real parts: a gRPC client of the CSI plugin that asks the
// way kubelet asks (pkg/volume/csi/csi_mounter.go, csi_client.go): the volume handle and target
// path kubelet derives for a pod's inline csi volume, the access mode it maps ReadWriteOnce to,
// the pod attributes it adds when the CSIDriver has podInfoOnMount, and the status codes it acts
// on; and the volume setup of a stored pod (csi volumes published through the plugin, emptyDirs,
// projected service-account tokens), with the in-container paths of a container mapped onto them.
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, posix } from 'node:path';
import { type Client, credentials, type GrpcObject, loadPackageDefinition, Metadata, type ServiceClientConstructor, type ServiceError } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';

import { CSI_PROTO, PROTO_OPTIONS } from '#agent/csi/server.js';

export interface CsiClient {
  identity: Client;
  node: Client;
  controller: Client;
  /** Resolves with the response, or with the gRPC error (code, details) instead of throwing. */
  call<T = Record<string, unknown>>(
    service: 'identity' | 'node' | 'controller',
    method: string,
    request: object,
  ): Promise<{ ok: true; value: T } | { ok: false; code: number; details: string }>;
  /** Sends these bytes as the body of a unary call, as a broken client would. */
  raw(path: string, bytes: Buffer): Promise<{ ok: boolean; code?: number; details?: string }>;
  close(): void;
}

export function csiClient(socketPath: string): CsiClient {
  const csi = (loadPackageDefinition(loadSync(CSI_PROTO, PROTO_OPTIONS)).csi as GrpcObject).v1 as GrpcObject;
  const address = `unix:${socketPath}`;
  const make = (name: string) => new (csi[name] as ServiceClientConstructor)(address, credentials.createInsecure());
  const clients = { identity: make('Identity'), node: make('Node'), controller: make('Controller') };
  return {
    ...clients,
    call(service, method, request) {
      const client = clients[service] as unknown as Record<
        string,
        (r: object, m: Metadata, o: object, cb: (e: ServiceError | null, v: unknown) => void) => void
      >;
      return new Promise((resolve) => {
        client[method]!.call(client, request, new Metadata(), { deadline: Date.now() + 15_000 }, (err, value) =>
          resolve(err ? { ok: false, code: err.code, details: err.details } : ({ ok: true, value } as never)),
        );
      });
    },
    raw(path, bytes) {
      return new Promise((resolve) => {
        clients.node.makeUnaryRequest(
          path,
          () => bytes,
          (b: Buffer) => b,
          {},
          (err) => resolve(err ? { ok: false, code: err.code, details: err.details } : { ok: true }),
        );
      });
    },
    close() {
      for (const c of Object.values(clients)) c.close();
    },
  };
}

export interface KubeletPod {
  uid: string;
  name: string;
  namespace: string;
  serviceAccount?: string;
}

/** makeVolumeHandle: csi-<sha256(podUID + volume name)>. */
export function volumeHandle(podUid: string, volume: string): string {
  return `csi-${createHash('sha256')
    .update(podUid + volume)
    .digest('hex')}`;
}

/** getTargetPath + GetCSIMounterPath: <root>/pods/<uid>/volumes/kubernetes.io~csi/<volume>/mount. */
export function targetPath(kubeletDir: string, podUid: string, volume: string): string {
  return join(kubeletDir, 'pods', podUid, 'volumes', 'kubernetes.io~csi', volume, 'mount');
}

/**
 * The NodePublishVolumeRequest kubelet sends for `csi: {driver: csi.nemutator.io, readOnly: true}`
 * in a pod's volumes, after creating the target's parent directory (0750) as kubelet does.
 */
export async function kubeletPublish(
  kubeletDir: string,
  pod: KubeletPod,
  volume = 'nemutator-socket',
): Promise<Record<string, unknown> & { target_path: string; volume_id: string }> {
  const target = targetPath(kubeletDir, pod.uid, volume);
  await mkdir(dirname(target), { recursive: true, mode: 0o750 });
  return {
    volume_id: volumeHandle(pod.uid, volume),
    publish_context: {},
    staging_target_path: '',
    target_path: target,
    // Inline volumes: accessMode ReadWriteOnce → SINGLE_NODE_WRITER, fsType from the volume (unset).
    volume_capability: { mount: { fs_type: '', mount_flags: [] }, access_mode: { mode: 'SINGLE_NODE_WRITER' } },
    readonly: true,
    secrets: {},
    volume_context: {
      'csi.storage.k8s.io/pod.name': pod.name,
      'csi.storage.k8s.io/pod.namespace': pod.namespace,
      'csi.storage.k8s.io/pod.uid': pod.uid,
      'csi.storage.k8s.io/serviceAccount.name': pod.serviceAccount ?? 'default',
      'csi.storage.k8s.io/ephemeral': 'true',
    },
  };
}

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** A csi volume of a pod as kubelet set it up: where it published it and the short path that stands for it. */
export interface PublishedCsiVolume {
  name: string;
  volumeId: string;
  target: string;
  /** A short symlink to the target: what the container runtime's mount at the volumeMount's mountPath stands for. */
  hostPath: string;
}

/** A stored pod's volumes on this machine, as kubelet would have set them up before starting its containers. */
export interface PodOnHost {
  /** Host directory of each volume this kubelet stand-in knows (csi of `driver`, emptyDir, projected tokens). */
  volumes: Record<string, string>;
  csi: PublishedCsiVolume[];
  /** The in-container path `p` of `container` on this machine, through its volumeMounts (longest mountPath wins, subPath followed). */
  pathIn(container: Obj, p: string): string;
  /** NodeUnpublishVolume of every published csi volume (kubelet's TearDown), then removes the pod's directories. */
  teardown(): Promise<void>;
}

export interface PodSetupOptions {
  client: CsiClient;
  kubeletDir: string;
  /** Where emptyDirs and projected volumes of this pod go. */
  podDir: string;
  driver: string;
  /** Issues the service-account token a projected volume asks for (the kube double's TokenRequest). */
  issueToken(o: { audience?: string; expirationSeconds?: number }): Promise<string>;
}

/**
 * kubelet's volume SetUp for a stored pod: each inline csi volume of `driver` is published with
 * NodePublishVolume exactly as kubelet sends it (a failed publish throws with its gRPC code),
 * emptyDirs are directories, projected volumes get their service-account tokens.
 *
 * In a pod the runtime bind-mounts the target at the volumeMount's mountPath, a short path; here
 * a short symlink in the temporary directory stands for it, because kubelet's target path plus
 * the socket's name is longer than the 108 bytes a unix socket address may have. The kernel
 * follows the symlink, so connections still go through the published mount.
 */
export async function setUpPodVolumes(pod: Obj, o: PodSetupOptions): Promise<PodOnHost> {
  const volumes: Record<string, string> = {};
  const csi: PublishedCsiVolume[] = [];
  const ref: KubeletPod = { uid: pod.metadata.uid, name: pod.metadata.name, namespace: pod.metadata.namespace, serviceAccount: pod.spec.serviceAccountName };
  for (const v of (pod.spec.volumes ?? []) as Obj[]) {
    if (v.csi?.driver === o.driver) {
      const req = await kubeletPublish(o.kubeletDir, ref, v.name);
      const r = await o.client.call('node', 'NodePublishVolume', req);
      if (!r.ok) throw Object.assign(new Error(`NodePublishVolume of ${v.name}: ${r.details}`), { code: r.code });
      const hostPath = join(await mkdtemp(join(tmpdir(), 'nemu-vol-')), 'v');
      await symlink(req.target_path, hostPath);
      csi.push({ name: v.name, volumeId: req.volume_id, target: req.target_path, hostPath });
      volumes[v.name] = hostPath;
    } else if (v.emptyDir) {
      volumes[v.name] = join(o.podDir, 'volumes', v.name);
      await mkdir(volumes[v.name]!, { recursive: true });
    } else if (v.projected) {
      volumes[v.name] = join(o.podDir, 'volumes', v.name);
      await mkdir(volumes[v.name]!, { recursive: true });
      for (const s of (v.projected.sources ?? []) as Obj[]) {
        const t = s.serviceAccountToken;
        if (t)
          await writeFile(join(volumes[v.name]!, t.path), await o.issueToken({ audience: t.audience, expirationSeconds: t.expirationSeconds }), {
            mode: 0o644,
          });
      }
    }
  }
  // kubelet creates a missing subPath directory inside its volume
  for (const c of [...(pod.spec.initContainers ?? []), ...pod.spec.containers] as Obj[]) {
    for (const m of (c.volumeMounts ?? []) as Obj[])
      if (m.subPath && volumes[m.name] && !csi.some((v) => v.name === m.name)) await mkdir(join(volumes[m.name]!, m.subPath), { recursive: true });
  }
  return { volumes, csi, pathIn: (container, p) => pathIn(container, volumes, p), teardown: () => tearDown(o, csi) };
}

function pathIn(container: Obj, volumes: Record<string, string>, p: string): string {
  if (!p.startsWith('/')) return p;
  const mounts = ((container.volumeMounts ?? []) as Obj[]).filter((m) => volumes[m.name] !== undefined).sort((a, b) => b.mountPath.length - a.mountPath.length);
  for (const m of mounts) {
    const mp = posix.normalize(m.mountPath);
    if (p === mp || p.startsWith(mp.endsWith('/') ? mp : `${mp}/`)) return join(volumes[m.name]!, m.subPath ?? '', p.slice(mp.length));
  }
  return p;
}

async function tearDown(o: PodSetupOptions, csi: PublishedCsiVolume[]): Promise<void> {
  for (const v of csi) {
    const r = await o.client.call('node', 'NodeUnpublishVolume', { volume_id: v.volumeId, target_path: v.target });
    if (!r.ok) throw Object.assign(new Error(`NodeUnpublishVolume of ${v.name}: ${r.details}`), { code: r.code });
    await unlink(v.hostPath);
    await rm(dirname(v.hostPath), { recursive: true, force: true });
  }
  await rm(o.podDir, { recursive: true, force: true });
}
