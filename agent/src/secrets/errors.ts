/** The secrets socket's error codes: stable, part of the socket API (docs/secrets.md). */
import { NemuError } from '../../../common/src/errors.ts';

export const SecretsErrors = {
  BAD_REQUEST: ['NEMU_ERR_SECRETS_BAD_REQUEST', 400],
  NO_ROUTE: ['NEMU_ERR_SECRETS_NO_ROUTE', 404],
  TOO_LARGE: ['NEMU_ERR_SECRETS_TOO_LARGE', 413],
  RATE_LIMITED: ['NEMU_ERR_SECRETS_RATE_LIMITED', 429],
  UNAUTHENTICATED: ['NEMU_ERR_SECRETS_UNAUTHENTICATED', 401],
  TOKEN_EXPIRED: ['NEMU_ERR_SECRETS_TOKEN_EXPIRED', 401],
  NOT_A_POD: ['NEMU_ERR_SECRETS_NOT_A_POD', 403],
  TOKEN_MISMATCH: ['NEMU_ERR_SECRETS_TOKEN_MISMATCH', 403],
  WRONG_NODE: ['NEMU_ERR_SECRETS_WRONG_NODE', 403],
  CONTAINER_MISMATCH: ['NEMU_ERR_SECRETS_CONTAINER_MISMATCH', 403],
  UNKNOWN_POD: ['NEMU_ERR_SECRETS_UNKNOWN_POD', 403],
  NOT_DECLARED: ['NEMU_ERR_SECRETS_NOT_DECLARED', 403],
  VAULT_DENIED: ['NEMU_ERR_SECRETS_VAULT_DENIED', 403],
  NOT_FOUND: ['NEMU_ERR_SECRETS_NOT_FOUND', 404],
  VAULT_UNAVAILABLE: ['NEMU_ERR_SECRETS_VAULT_UNAVAILABLE', 503],
  INTERNAL: ['NEMU_ERR_SECRETS_INTERNAL', 500],
} as const;

export type SecretsErrorKind = keyof typeof SecretsErrors;

export function secretsError(kind: SecretsErrorKind, message: string): NemuError {
  const [code, status] = SecretsErrors[kind];
  return new NemuError(code, message, { status });
}
