/**
 * The controller's error codes: the shared ones (common/src/errors.ts) and those only the
 * controller emits. Code references go through this object; docs/errors.md lists every code.
 */
import { ErrorCodes } from '#common/errors.js';

export const ControllerErrorCodes = {
  ...ErrorCodes,
  PROMETHEUS: 'NEMU_ERR_PROMETHEUS',
  /** `nemutator run` cannot create the pod-shaped cgroup without root. */
  RUN_NEEDS_ROOT: 'NEMU_ERR_RUN_NEEDS_ROOT',
  RUN_CGROUP: 'NEMU_ERR_RUN_CGROUP',
  RUN_LAUNCHER: 'NEMU_ERR_RUN_LAUNCHER',
} as const;
