/** The secrets socket's errors and their HTTP statuses: stable, part of the socket API (docs/secrets.md). */
import { NemuError } from '#common/errors.js';

import { AgentErrorCodes } from '../errors.ts';

export const SecretsErrors = {
  BAD_REQUEST: [AgentErrorCodes.SECRETS_BAD_REQUEST, 400],
  NO_ROUTE: [AgentErrorCodes.SECRETS_NO_ROUTE, 404],
  TOO_LARGE: [AgentErrorCodes.SECRETS_TOO_LARGE, 413],
  RATE_LIMITED: [AgentErrorCodes.SECRETS_RATE_LIMITED, 429],
  UNAUTHENTICATED: [AgentErrorCodes.SECRETS_UNAUTHENTICATED, 401],
  TOKEN_EXPIRED: [AgentErrorCodes.SECRETS_TOKEN_EXPIRED, 401],
  NOT_A_POD: [AgentErrorCodes.SECRETS_NOT_A_POD, 403],
  TOKEN_MISMATCH: [AgentErrorCodes.SECRETS_TOKEN_MISMATCH, 403],
  WRONG_NODE: [AgentErrorCodes.SECRETS_WRONG_NODE, 403],
  CONTAINER_MISMATCH: [AgentErrorCodes.SECRETS_CONTAINER_MISMATCH, 403],
  UNKNOWN_POD: [AgentErrorCodes.SECRETS_UNKNOWN_POD, 403],
  NOT_DECLARED: [AgentErrorCodes.SECRETS_NOT_DECLARED, 403],
  VAULT_DENIED: [AgentErrorCodes.SECRETS_VAULT_DENIED, 403],
  NOT_FOUND: [AgentErrorCodes.SECRETS_NOT_FOUND, 404],
  VAULT_UNAVAILABLE: [AgentErrorCodes.SECRETS_VAULT_UNAVAILABLE, 503],
  INTERNAL: [AgentErrorCodes.SECRETS_INTERNAL, 500],
} as const;

export type SecretsErrorKind = keyof typeof SecretsErrors;

export function secretsError(kind: SecretsErrorKind, message: string): NemuError {
  const [code, status] = SecretsErrors[kind];
  return new NemuError(code, message, { status });
}
