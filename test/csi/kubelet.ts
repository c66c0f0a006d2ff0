// A gRPC client of the CSI plugin that asks the way kubelet asks (pkg/volume/csi/csi_mounter.go,
// csi_client.go): the volume handle and target path kubelet derives for a pod's inline csi
// volume, the access mode it maps ReadWriteOnce to, the pod attributes it adds when the
// CSIDriver has podInfoOnMount, and the status codes it acts on.
import { createHash } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { credentials, loadPackageDefinition, Metadata, type Client, type GrpcObject, type ServiceClientConstructor, type ServiceError } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { CSI_PROTO, PROTO_OPTIONS } from '../../agent/src/csi/server.ts';

export interface CsiClient {
  identity: Client;
  node: Client;
  controller: Client;
  /** Resolves with the response, or with the gRPC error (code, details) instead of throwing. */
  call<T = Record<string, unknown>>(service: 'identity' | 'node' | 'controller', method: string, request: object): Promise<{ ok: true; value: T } | { ok: false; code: number; details: string }>;
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
      const client = clients[service] as unknown as Record<string, (r: object, m: Metadata, o: object, cb: (e: ServiceError | null, v: unknown) => void) => void>;
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
  return `csi-${createHash('sha256').update(podUid + volume).digest('hex')}`;
}

/** getTargetPath + GetCSIMounterPath: <root>/pods/<uid>/volumes/kubernetes.io~csi/<volume>/mount. */
export function targetPath(kubeletDir: string, podUid: string, volume: string): string {
  return join(kubeletDir, 'pods', podUid, 'volumes', 'kubernetes.io~csi', volume, 'mount');
}

/**
 * The NodePublishVolumeRequest kubelet sends for `csi: {driver: csi.nemutator.io, readOnly: true}`
 * in a pod's volumes, after creating the target's parent directory (0750) as kubelet does.
 */
export async function kubeletPublish(kubeletDir: string, pod: KubeletPod, volume = 'nemutator-socket'): Promise<Record<string, unknown> & { target_path: string; volume_id: string }> {
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
