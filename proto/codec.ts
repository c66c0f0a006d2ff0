/**
 * Encoding and decoding of fleet-link frames. 64-bit integers are plain numbers (every
 * counter we carry stays far below 2^53). Decoding never throws raw protobuf errors at the
 * caller: a bad frame becomes a NemuError with NEMU_ERR_FLEET_FRAME.
 */
import protobuf from 'protobufjs/minimal.js';

import { ErrorCodes, NemuError } from '#common/errors.js';

import { nemutator } from './gen/nemutator.js';

// Numbers, not Long objects, for int64/uint64.
protobuf.util.Long = undefined as unknown as typeof protobuf.util.Long;
protobuf.configure();

export const PROTOCOL_VERSION = 1;
export const DEFAULT_MAX_FRAME_BYTES = 4 * 1024 * 1024;

export const pb = nemutator.v1;
export type IEnvelope = nemutator.v1.IEnvelope;
export type IHello = nemutator.v1.IHello;
export type IWelcome = nemutator.v1.IWelcome;
export type INodeReport = nemutator.v1.INodeReport;
export type INodeMetrics = nemutator.v1.INodeMetrics;
export type IPodUsage = nemutator.v1.IPodUsage;
export type IContainerUsage = nemutator.v1.IContainerUsage;
export type IPressure = nemutator.v1.IPressure;
export type ICommand = nemutator.v1.ICommand;
export type ICommandResult = nemutator.v1.ICommandResult;
export type IError = nemutator.v1.IError;

/** The name of the body a frame carries ("hello", "report", …). */
export type EnvelopeKind = 'hello' | 'welcome' | 'report' | 'command' | 'result' | 'error';

export function encodeEnvelope(msg: IEnvelope): Uint8Array {
  return pb.Envelope.encode(msg).finish();
}

export function decodeEnvelope(data: Uint8Array, maxBytes = DEFAULT_MAX_FRAME_BYTES): nemutator.v1.Envelope & { body?: EnvelopeKind } {
  if (data.byteLength > maxBytes) {
    throw new NemuError(ErrorCodes.FLEET_FRAME, `frame of ${data.byteLength} bytes exceeds the limit of ${maxBytes} bytes`, { status: 413 });
  }
  let env: nemutator.v1.Envelope;
  try {
    env = pb.Envelope.decode(data);
  } catch (e) {
    throw new NemuError(ErrorCodes.FLEET_FRAME, `frame is not a valid nemutator.v1.Envelope: ${(e as Error).message}`, { status: 400 });
  }
  if (!env.body) {
    throw new NemuError(ErrorCodes.FLEET_FRAME, 'frame carries no known message (empty Envelope or a newer protocol version)', { status: 400 });
  }
  return env as nemutator.v1.Envelope & { body?: EnvelopeKind };
}
