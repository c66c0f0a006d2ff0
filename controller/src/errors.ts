/**
 * The controller's error codes: the shared ones (common/src/errors.ts) and those only the
 * controller emits. Code references go through this object; docs/errors.md lists every code.
 */
import { ErrorCodes } from '../../common/src/errors.ts';

export const ControllerErrorCodes = {
  ...ErrorCodes,
  PROMETHEUS: 'NEMU_ERR_PROMETHEUS',
} as const;
