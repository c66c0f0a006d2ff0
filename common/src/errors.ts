/**
 * Errors carry a stable code (NEMU_ERR_*) and a message that tells the user what to do.
 * Codes are part of the public surface: REST answers, socket answers and the CLI print them,
 * so never rename one; add a new one instead.
 */
export const ErrorCodes = {
  CONFIG: 'NEMU_ERR_CONFIG',
  CONFIG_FILE: 'NEMU_ERR_CONFIG_FILE',
  BAD_REQUEST: 'NEMU_ERR_BAD_REQUEST',
  NOT_FOUND: 'NEMU_ERR_NOT_FOUND',
  UNAUTHORIZED: 'NEMU_ERR_UNAUTHORIZED',
  FORBIDDEN: 'NEMU_ERR_FORBIDDEN',
  AUTHZ_UNAVAILABLE: 'NEMU_ERR_AUTHZ_UNAVAILABLE',
  RATE_LIMITED: 'NEMU_ERR_RATE_LIMITED',
  SECRETS_REQUIRED: 'NEMU_ERR_SECRETS_REQUIRED',
  /** Local mode reads secrets from Vault: the embedded store takes no writes. */
  SECRETS_IN_VAULT: 'NEMU_ERR_SECRETS_IN_VAULT',
  CONFLICT: 'NEMU_ERR_CONFLICT',
  PAYLOAD_TOO_LARGE: 'NEMU_ERR_PAYLOAD_TOO_LARGE',
  HEADERS_TOO_LARGE: 'NEMU_ERR_HEADERS_TOO_LARGE',
  NESTING_TOO_DEEP: 'NEMU_ERR_NESTING_TOO_DEEP',
  WEBHOOK_BUSY: 'NEMU_ERR_WEBHOOK_BUSY',
  STORE: 'NEMU_ERR_STORE',
  DICT_UNREACHABLE: 'NEMU_ERR_DICT_UNREACHABLE',
  MUTATION_LOG: 'NEMU_ERR_MUTATION_LOG',
  FLEET_AUTH: 'NEMU_ERR_FLEET_AUTH',
  FLEET_FRAME: 'NEMU_ERR_FLEET_FRAME',
  TLS: 'NEMU_ERR_TLS',
  INTERNAL: 'NEMU_ERR_INTERNAL',
  // The profiler's codes travel from the agent to the controller, which answers with them.
  PROFILER_NO_BPFTRACE: 'NEMU_ERR_PROFILER_NO_BPFTRACE',
  PROFILER_PERMISSION: 'NEMU_ERR_PROFILER_PERMISSION',
  PROFILER_NO_BPF: 'NEMU_ERR_PROFILER_NO_BPF',
  PROFILER_NO_BTF: 'NEMU_ERR_PROFILER_NO_BTF',
  PROFILER_TARGET: 'NEMU_ERR_PROFILER_TARGET',
  PROFILER_LIMIT: 'NEMU_ERR_PROFILER_LIMIT',
  PROFILER_BUSY: 'NEMU_ERR_PROFILER_BUSY',
  PROFILER_ABORTED: 'NEMU_ERR_PROFILER_ABORTED',
  PROFILER_FAILED: 'NEMU_ERR_PROFILER_FAILED',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export class NemuError extends Error {
  readonly code: string;
  /** HTTP status to answer with when this error reaches an API boundary. */
  readonly status: number;

  constructor(code: string, message: string, options: { status?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'NemuError';
    this.code = code;
    this.status = options.status ?? 500;
  }

  /** `CODE: message`, the form printed by the CLI and the programs on start-up failures. */
  override toString(): string {
    return `${this.code}: ${this.message}`;
  }

  toJSON(): { code: string; message: string } {
    return { code: this.code, message: this.message };
  }
}

export function isNemuError(e: unknown): e is NemuError {
  return e instanceof NemuError;
}
