/**
 * Where values come from, per pod: the seam between the secrets service and a KV store.
 * A pod gets its own session (opened with its token and role, revoked when it is gone), which
 * reads a KV v2-shaped path (data + version) and tells the current version for rotation.
 * Vault (vault.ts: kubernetes auth as the pod, or one static token in local mode) and local
 * mode's embedded store implement it; the cache, rotation and socket do not know which.
 */
import type { SecretRef } from './references.ts';
import { type VaultOptions, VaultSession } from './vault.ts';

export interface KvRead {
  data: Record<string, string>;
  version: number;
}

export interface SecretSession {
  readKv(ref: Pick<SecretRef, 'mount' | 'path' | 'id'>): Promise<KvRead>;
  /** The current version; undefined when the source may not say (then rotation reads the data). */
  currentVersion(ref: Pick<SecretRef, 'mount' | 'path' | 'id'>): Promise<number | undefined>;
  /** The pod's latest token (callers refresh it with every request). */
  updateToken(jwt: string): void;
  /** The pod is gone: end the session (Vault: revoke its token). */
  revoke(): Promise<void>;
}

export interface SecretSource {
  /** `vault` or `embedded`: what the agent logs at start-up and status shows. */
  readonly kind: string;
  session(pod: { namespace: string; name: string; role: string }, token: string): SecretSession;
}

/** Vault, logged in to its kubernetes auth method with each pod's own token and role. */
export function vaultSource(opts: VaultOptions): SecretSource {
  return { kind: 'vault', session: (pod, token) => new VaultSession(opts, pod.role, token) };
}

/**
 * Vault read with one token of the user's (local mode with VAULT_ADDR: there is no API server
 * for Vault's kubernetes auth to review pod tokens with). The token's policy decides what is
 * readable; the agent still hands each local pod only the references it declared.
 */
export function vaultTokenSource(opts: VaultOptions, vaultToken: string): SecretSource {
  return { kind: 'vault', session: (pod, token) => new VaultSession(opts, pod.role, token, vaultToken) };
}
