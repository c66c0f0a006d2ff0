/**
 * The token's half of a caller's identity: the pod's projected service-account token,
 * verified locally against the API server's JWKS (signature, expiry, audience), with its
 * pod claim bound to the cgroup's pod and its node claim to this node. Verified tokens are
 * cached until they expire, so a busy pod costs one RSA verification per token.
 */
import { createLocalJWKSet, errors as joseErrors, type JSONWebKeySet, jwtVerify } from 'jose';

import { isNemuError } from '#common/errors.js';

import { secretsError } from './errors.ts';

export interface PodClaims {
  namespace: string;
  serviceAccount: string;
  podName: string;
  podUid: string;
  nodeName?: string;
  audiences: string[];
  expiresAtMs: number;
}

export interface TokenVerifierOptions {
  /** Fetches the JWKS (the API server's /openid/v1/jwks). */
  fetchJwks(): Promise<JSONWebKeySet>;
  issuer?: string;
  /** Least time between two JWKS fetches triggered by unknown key ids. */
  refetchMs?: number;
  maxCached?: number;
}

export class PodTokenVerifier {
  private keySet: ReturnType<typeof createLocalJWKSet> | undefined;
  private fetchedAt = 0;
  private readonly cache = new Map<string, PodClaims>();

  constructor(private readonly opts: TokenVerifierOptions) {}

  private async keys(force: boolean) {
    if (!this.keySet || (force && Date.now() - this.fetchedAt > (this.opts.refetchMs ?? 10_000))) {
      let jwks: JSONWebKeySet;
      try {
        jwks = await this.opts.fetchJwks();
      } catch (err) {
        throw secretsError('VAULT_UNAVAILABLE', `cannot fetch the service-account JWKS to verify tokens: ${(err as Error).message}`);
      }
      this.keySet = createLocalJWKSet(jwks);
      this.fetchedAt = Date.now();
    }
    return this.keySet;
  }

  /** The claims of a valid token carrying `audience`; throws a secrets error otherwise. */
  async verify(token: string, audience: string): Promise<PodClaims> {
    const cached = this.cache.get(token);
    if (cached) {
      if (cached.expiresAtMs <= Date.now()) {
        this.cache.delete(token);
        throw secretsError('TOKEN_EXPIRED', 'the pod token has expired; kubelet refreshes the projected token, read the file again');
      }
      if (!cached.audiences.includes(audience)) throw secretsError('UNAUTHENTICATED', `the pod token is not for audience "${audience}"`);
      return cached;
    }
    let payload: Record<string, unknown>;
    const check = async (force: boolean) =>
      (
        await jwtVerify(token, await this.keys(force), {
          ...(this.opts.issuer ? { issuer: this.opts.issuer } : {}),
          audience,
          clockTolerance: 0,
          requiredClaims: ['exp'],
        })
      ).payload as Record<string, unknown>;
    try {
      try {
        payload = await check(false);
      } catch (err) {
        if (!(err instanceof joseErrors.JWKSNoMatchingKey)) throw err;
        payload = await check(true); // keys rotated: fetch them again
      }
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired)
        throw secretsError('TOKEN_EXPIRED', 'the pod token has expired; kubelet refreshes the projected token, read the file again');
      if (err instanceof joseErrors.JWTClaimValidationFailed)
        throw secretsError('UNAUTHENTICATED', `the pod token was refused: ${err.claim} claim check failed (expected audience "${audience}")`);
      if (isNemuError(err)) throw err;
      throw secretsError('UNAUTHENTICATED', 'the pod token is not a valid service-account token of this cluster');
    }
    const k = payload['kubernetes.io'] as
      { namespace?: string; serviceaccount?: { name?: string }; pod?: { name?: string; uid?: string }; node?: { name?: string } } | undefined;
    if (!k?.namespace || !k.serviceaccount?.name || !k.pod?.uid || !k.pod.name) {
      throw secretsError('UNAUTHENTICATED', 'the token is not bound to a pod (no kubernetes.io pod claim); mount a projected service-account token');
    }
    const aud = payload.aud;
    const claims: PodClaims = {
      namespace: k.namespace,
      serviceAccount: k.serviceaccount.name,
      podName: k.pod.name,
      podUid: k.pod.uid,
      ...(k.node?.name ? { nodeName: k.node.name } : {}),
      audiences: Array.isArray(aud) ? (aud as string[]) : typeof aud === 'string' ? [aud] : [],
      expiresAtMs: Number(payload.exp) * 1000,
    };
    if (this.cache.size >= (this.opts.maxCached ?? 10_000)) this.cache.clear();
    this.cache.set(token, claims);
    return claims;
  }
}
