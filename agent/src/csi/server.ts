/**
 * The CSI node plugin csi.nemutator.io: the Identity and Node services of the CSI spec
 * (proto/csi.proto, vendored) over gRPC on a unix socket that kubelet dials after the
 * node-driver-registrar sidecar registered it. Every call is counted by result and every
 * publish/unpublish logged with the pod kubelet names; a bad call gets the spec's status
 * code and a message, never takes the agent down.
 */
import { chmod, lstat, mkdir, unlink } from 'node:fs/promises';
import { dirname, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Counter, type Registry } from 'prom-client';

import { ErrorCodes, NemuError } from '#common/errors.js';
import type { Logger } from '#common/log.js';
import { VERSION } from '#common/version.js';

import { CsiError } from './errors.ts';
import { GrpcStatus, GrpcStatusError, type UnaryMethod, type UnaryServer, unaryServer } from './grpc.ts';
import { type Mounter, utilLinuxMounter } from './mounter.ts';
import { type MountEntry, readMountInfo } from './mountinfo.ts';
import { NodeVolumes, podInfo, type PublishRequest, type UnpublishRequest } from './node.ts';
import { decodeIgnored, decodePublish, decodeUnpublish, encodeEmpty, encodeNodeInfo, encodePluginInfo, encodeProbe } from './wire.ts';

export const DRIVER_NAME = 'csi.nemutator.io';
/** The CSI spec's protobuf definitions, vendored; wire.ts encodes the messages the plugin serves by them. */
export const CSI_PROTO = fileURLToPath(new URL('./proto/csi.proto', import.meta.url));
/** How clients (tests, the benchmark's kubelet) load CSI_PROTO with @grpc/proto-loader: snake_case field names as in the spec, enums as their names, oneofs named (access_type). */
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

/** A method: decodes its request, does the work, encodes the response. */
interface Method<Req> {
  decode(bytes: Uint8Array): Req;
  handle(request: Req): Promise<Uint8Array>;
}

const STATUS_NAMES = Object.fromEntries(Object.entries(GrpcStatus).map(([name, code]) => [code, name])) as Record<number, string>;
const MAX_MESSAGE_BYTES = 1024 * 1024;

export async function startCsiServer(o: CsiServerOptions): Promise<CsiServer> {
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
  const unary = countedUnary(operations, o.log);
  const methods = new Map<string, UnaryMethod>([...identityMethods(o, unary), ...nodeMethods(o, volumes, unary)]);
  const served = unaryServer(methods, { maxMessageBytes: MAX_MESSAGE_BYTES });
  await listen(served, o.socketPath);
  o.log.info({ socket: o.socketPath, driver: DRIVER_NAME, source: dirname(o.secretsSocketPath) }, 'csi node plugin listening');
  return {
    socketPath: o.socketPath,
    async stop() {
      await served.close(5000);
      await unlink(o.socketPath).catch(() => undefined);
    },
  };
}

type Unary = <Req>(operation: string, m: Method<Req>) => UnaryMethod;

/** Every call is counted by its gRPC status; a CsiError becomes its status with the NEMU code in the message. */
function countedUnary(operations: Counter<'operation' | 'result'>, log: Logger): Unary {
  return <Req>(operation: string, m: Method<Req>): UnaryMethod =>
    async (bytes) => {
      try {
        let request: Req;
        try {
          request = m.decode(bytes);
        } catch (e) {
          throw new CsiError('INTERNAL', `cannot decode the ${operation} request: ${(e as Error).message}`);
        }
        const response = await m.handle(request);
        operations.inc({ operation, result: 'OK' });
        return response;
      } catch (e) {
        const err = e instanceof CsiError ? e : new CsiError('INTERNAL', `unexpected error in ${operation}: ${(e as Error).message ?? String(e)}`);
        if (!(e instanceof CsiError)) log.error({ operation, err: String(e) }, 'csi: unexpected error');
        operations.inc({ operation, result: STATUS_NAMES[err.grpcCode] ?? String(err.grpcCode) });
        throw new GrpcStatusError(err.grpcCode, `${err.code}: ${err.message}`);
      }
    };
}

/** No CONTROLLER_SERVICE: ephemeral inline volumes are never provisioned nor attached. */
function identityMethods(o: CsiServerOptions, unary: Unary): Array<[string, UnaryMethod]> {
  const info = (handle: () => Promise<Uint8Array>): Method<object> => ({ decode: decodeIgnored, handle });
  return [
    [
      '/csi.v1.Identity/GetPluginInfo',
      unary(
        'GetPluginInfo',
        info(async () => encodePluginInfo(DRIVER_NAME, VERSION)),
      ),
    ],
    [
      '/csi.v1.Identity/GetPluginCapabilities',
      unary(
        'GetPluginCapabilities',
        info(async () => encodeEmpty()),
      ),
    ],
    [
      '/csi.v1.Identity/Probe',
      unary(
        'Probe',
        info(async () => encodeProbe(await isSocket(o.secretsSocketPath))),
      ),
    ],
  ];
}

function nodeMethods(o: CsiServerOptions, volumes: NodeVolumes, unary: Unary): Array<[string, UnaryMethod]> {
  // Logged: which pod, which volume, where, and the outcome; never volume_context's other
  // entries (a driver's secrets could travel there) nor the request's secrets field (not even decoded).
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
  return [
    ['/csi.v1.Node/NodeGetInfo', unary('NodeGetInfo', { decode: decodeIgnored, handle: async () => encodeNodeInfo(o.nodeName) })],
    // None of STAGE_UNSTAGE_VOLUME, GET_VOLUME_STATS, …: kubelet then calls only Publish/Unpublish.
    ['/csi.v1.Node/NodeGetCapabilities', unary('NodeGetCapabilities', { decode: decodeIgnored, handle: async () => encodeEmpty() })],
    [
      '/csi.v1.Node/NodePublishVolume',
      unary('NodePublishVolume', {
        decode: decodePublish,
        handle: async (req: PublishRequest) => {
          await logged('publish', req, () => volumes.publish(req));
          return encodeEmpty();
        },
      }),
    ],
    [
      '/csi.v1.Node/NodeUnpublishVolume',
      unary('NodeUnpublishVolume', {
        decode: decodeUnpublish,
        handle: async (req: UnpublishRequest) => {
          await logged('unpublish', req, () => volumes.unpublish(req));
          return encodeEmpty();
        },
      }),
    ],
  ];
}

async function isSocket(path: string): Promise<boolean> {
  return lstat(path).then(
    (s) => s.isSocket(),
    () => false,
  );
}

/** Binds the unix socket, replacing a stale one from a previous agent; only root may connect (kubelet, the registrar). */
async function listen(served: UnaryServer, path: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o750 });
  const existing = await lstat(path).catch(() => undefined);
  if (existing?.isSocket()) await unlink(path);
  else if (existing) throw new NemuError(ErrorCodes.CONFIG, `csiSocket = ${path} exists and is not a socket; remove it or set --csi-socket`);
  await new Promise<void>((resolve, reject) => {
    const refused = (err: Error): void => reject(new NemuError(ErrorCodes.CONFIG, `cannot serve the CSI plugin on csiSocket = ${path}: ${err.message}`));
    served.server.once('error', refused);
    served.server.listen(path, () => {
      served.server.off('error', refused);
      resolve();
    });
  });
  await chmod(path, 0o600);
}
