/**
 * The CSI node plugin csi.nemutator.io: the Identity and Node services of the CSI spec
 * (proto/csi.proto, vendored) over gRPC on a unix socket that kubelet dials after the
 * node-driver-registrar sidecar registered it. Every call is counted by result and every
 * publish/unpublish logged with the pod kubelet names; a bad call gets the spec's status
 * code and a message, never takes the agent down.
 */
import { lstat, chmod, mkdir, unlink } from 'node:fs/promises';
import { dirname, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Server, ServerCredentials, loadPackageDefinition, status, type GrpcObject, type ServiceClientConstructor, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { Counter, type Registry } from 'prom-client';
import { ErrorCodes, NemuError } from '../../../common/src/errors.ts';
import type { Logger } from '../../../common/src/log.ts';
import { VERSION } from '../../../common/src/version.ts';
import { CsiError } from './errors.ts';
import { readMountInfo, type MountEntry } from './mountinfo.ts';
import { utilLinuxMounter, type Mounter } from './mounter.ts';
import { NodeVolumes, podInfo, type PublishRequest, type UnpublishRequest } from './node.ts';

export const DRIVER_NAME = 'csi.nemutator.io';
export const CSI_PROTO = fileURLToPath(new URL('./proto/csi.proto', import.meta.url));
/** snake_case field names as in the spec, enums as their names, oneofs named (access_type). */
export const PROTO_OPTIONS = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true } as const;

export interface CsiServerOptions {
  /** Where the plugin listens (the registrar and kubelet reach it there). */
  socketPath: string;
  nodeName: string;
  /** The agent's secrets socket: its directory is what pods get; Probe is ready once it exists. */
  secretsSocketPath: string;
  /** kubelet's root directory; targets must be under `<kubeletDir>/pods`. */
  kubeletDir: string;
  log: Logger;
  /** Where nemutator_agent_csi_operations_total goes (the agent's /metrics). */
  registry: Registry;
  mounter?: Mounter;
  mountInfo?: () => Promise<MountEntry[]>;
}

export interface CsiServer {
  socketPath: string;
  stop(): Promise<void>;
}

type Handler = (request: unknown) => Promise<object>;

export async function startCsiServer(o: CsiServerOptions): Promise<CsiServer> {
  const csi = (loadPackageDefinition(loadSync(CSI_PROTO, PROTO_OPTIONS)).csi as GrpcObject).v1 as GrpcObject;
  const operations = new Counter({
    name: 'nemutator_agent_csi_operations_total',
    help: 'Calls to the CSI node plugin csi.nemutator.io, by operation (NodePublishVolume, …) and result (the gRPC status: OK, INVALID_ARGUMENT, …).',
    labelNames: ['operation', 'result'],
    registers: [o.registry],
  });
  const volumes = new NodeVolumes({
    sourceDir: dirname(o.secretsSocketPath),
    podsDir: normalize(`${o.kubeletDir}/pods`).replace(/(.)\/+$/, '$1'),
    mounter: o.mounter ?? utilLinuxMounter(),
    mountInfo: o.mountInfo ?? (() => readMountInfo()),
    log: o.log,
  });
  const unary = (operation: string, handler: Handler): UntypedServiceImplementation[string] =>
    ((call: { request: unknown }, callback: (err: { code: status; details: string } | null, value?: object) => void) => {
      handler(call.request).then(
        (value) => {
          operations.inc({ operation, result: 'OK' });
          callback(null, value);
        },
        (e: unknown) => {
          const err = e instanceof CsiError ? e : new CsiError('INTERNAL', `unexpected error in ${operation}: ${(e as Error).message ?? String(e)}`);
          if (!(e instanceof CsiError)) o.log.error({ operation, err: String(e) }, 'csi: unexpected error');
          operations.inc({ operation, result: status[err.grpcCode] });
          callback({ code: err.grpcCode, details: `${err.code}: ${err.message}` });
        },
      );
    }) as UntypedServiceImplementation[string];

  const server = new Server({ 'grpc.max_receive_message_length': 1024 * 1024 });
  server.addService((csi.Identity as ServiceClientConstructor).service, {
    GetPluginInfo: unary('GetPluginInfo', async () => ({ name: DRIVER_NAME, vendor_version: VERSION })),
    // No CONTROLLER_SERVICE: ephemeral inline volumes are never provisioned nor attached.
    GetPluginCapabilities: unary('GetPluginCapabilities', async () => ({ capabilities: [] })),
    Probe: unary('Probe', async () => ({ ready: { value: await isSocket(o.secretsSocketPath) } })),
  });
  server.addService((csi.Node as ServiceClientConstructor).service, nodeHandlers(o, volumes, unary));
  await listen(server, o.socketPath);
  o.log.info({ socket: o.socketPath, driver: DRIVER_NAME, source: dirname(o.secretsSocketPath) }, 'csi node plugin listening');
  return {
    socketPath: o.socketPath,
    async stop() {
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 5000);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
      await unlink(o.socketPath).catch(() => undefined);
    },
  };
}

function nodeHandlers(o: CsiServerOptions, volumes: NodeVolumes, unary: (operation: string, handler: Handler) => UntypedServiceImplementation[string]): UntypedServiceImplementation {
  // Logged: which pod, which volume, where, and the outcome; never volume_context's other
  // entries (a driver's secrets could travel there) nor the request's secrets field.
  const logged = async <T>(operation: string, req: PublishRequest, work: () => Promise<T>): Promise<T> => {
    const fields = { volumeId: req.volume_id, target: req.target_path, pod: podInfo(req.volume_context) };
    try {
      const outcome = await work();
      o.log.info({ ...fields, outcome }, `csi ${operation}`);
      return outcome;
    } catch (e) {
      o.log.warn({ ...fields, code: (e as NemuError).code, err: (e as Error).message }, `csi ${operation} refused`);
      throw e;
    }
  };
  return {
    NodeGetInfo: unary('NodeGetInfo', async () => ({ node_id: o.nodeName, max_volumes_per_node: 0 })),
    // None of STAGE_UNSTAGE_VOLUME, GET_VOLUME_STATS, …: kubelet then calls only Publish/Unpublish.
    NodeGetCapabilities: unary('NodeGetCapabilities', async () => ({ capabilities: [] })),
    NodePublishVolume: unary('NodePublishVolume', async (request) => {
      const req = (request ?? {}) as PublishRequest;
      await logged('publish', req, () => volumes.publish(req));
      return {};
    }),
    NodeUnpublishVolume: unary('NodeUnpublishVolume', async (request) => {
      const req = (request ?? {}) as UnpublishRequest;
      await logged('unpublish', req, () => volumes.unpublish(req));
      return {};
    }),
  };
}

async function isSocket(path: string): Promise<boolean> {
  return lstat(path).then(
    (s) => s.isSocket(),
    () => false,
  );
}

/** Binds the unix socket, replacing a stale one from a previous agent; only root may connect (kubelet, the registrar). */
async function listen(server: Server, path: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o750 });
  const existing = await lstat(path).catch(() => undefined);
  if (existing?.isSocket()) await unlink(path);
  else if (existing) throw new NemuError(ErrorCodes.CONFIG, `csiSocket = ${path} exists and is not a socket; remove it or set --csi-socket`);
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`unix:${path}`, ServerCredentials.createInsecure(), (err) =>
      err ? reject(new NemuError(ErrorCodes.CONFIG, `cannot serve the CSI plugin on csiSocket = ${path}: ${err.message}`)) : resolve(),
    ),
  );
  await chmod(path, 0o600);
}
