/**
 * The CSI plugin's errors: a stable NEMU_ERR_CSI_* code for people reading kubelet's events,
 * and the gRPC status code the CSI spec names for the condition, which is what kubelet acts on
 * (spec.md, "Error Scheme" and each RPC's "Errors" table).
 */
import { NemuError } from '#common/errors.js';

import { AgentErrorCodes } from '../errors.ts';
import { GrpcStatus, type GrpcStatusCode } from './grpc.ts';

export const CsiErrors = {
  /** A required field is missing, or a field has a value this driver does not support. */
  BAD_REQUEST: [AgentErrorCodes.CSI_BAD_REQUEST, GrpcStatus.INVALID_ARGUMENT],
  /** The target is already mounted, but not from the agent's socket directory. */
  TARGET_BUSY: [AgentErrorCodes.CSI_TARGET_BUSY, GrpcStatus.ALREADY_EXISTS],
  /** mount(8)/umount(8) or the target directory failed; the message has their words. */
  MOUNT: [AgentErrorCodes.CSI_MOUNT, GrpcStatus.INTERNAL],
  INTERNAL: [AgentErrorCodes.CSI_INTERNAL, GrpcStatus.INTERNAL],
} as const;

export type CsiErrorKind = keyof typeof CsiErrors;

export class CsiError extends NemuError {
  readonly grpcCode: GrpcStatusCode;

  constructor(kind: CsiErrorKind, message: string, options: { cause?: unknown } = {}) {
    const [code, grpcCode] = CsiErrors[kind];
    super(code, message, options);
    this.grpcCode = grpcCode;
  }
}
