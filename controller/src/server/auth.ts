/** Local-mode authentication: one admin token, compared in constant time. */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

import { ErrorCodes, NemuError } from '#common/errors.js';

import type { Authenticator, Identity } from './router.ts';

export function generateToken(): string {
  return randomBytes(32).toString('base64url');
}

export function bearer(authorization: string | undefined): string | undefined {
  if (!authorization) return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
  return m?.[1];
}

export class StaticTokenAuthenticator implements Authenticator {
  private readonly digest: Buffer;
  constructor(
    token: string,
    private readonly identity: Identity = { username: 'nemutator:local-admin', groups: ['system:masters'] },
  ) {
    this.digest = createHash('sha256').update(token).digest();
  }

  async authenticate(authorization: string | undefined): Promise<Identity | undefined> {
    const token = bearer(authorization);
    if (!token) return undefined;
    const got = createHash('sha256').update(token).digest();
    return timingSafeEqual(got, this.digest) ? this.identity : undefined;
  }
}

/** In a cluster: REST API callers present Kubernetes bearer tokens, reviewed by the API server. */
export class TokenReviewAuthenticator implements Authenticator {
  constructor(
    private readonly reviewer: { review(token: string): Promise<import('../kube/tokenreview.ts').TokenVerdict>; accepted?(token: string): boolean },
  ) {}

  async authenticate(authorization: string | undefined): Promise<Identity | undefined> {
    const token = bearer(authorization);
    if (!token) return undefined;
    let v;
    try {
      v = await this.reviewer.review(token);
    } catch (e) {
      // The client's error may quote the request; the token must not reach a log or an answer.
      const why = ((e as Error).message ?? '').split(token).join('***');
      throw new NemuError(
        ErrorCodes.AUTHZ_UNAVAILABLE,
        `cannot check the bearer token: the API server did not answer the TokenReview (${why}); the controller needs create on tokenreviews.authentication.k8s.io`,
        { status: 503 },
      );
    }
    if (!v.authenticated) return undefined;
    const extra = Object.keys(v.user.extra).length > 0 ? { extra: v.user.extra } : {};
    return { username: v.user.username, groups: v.user.groups, ...(v.user.uid ? { uid: v.user.uid } : {}), ...extra };
  }

  /** Whether this token was reviewed and accepted recently (no API call). */
  knows(authorization: string | undefined): boolean {
    const token = bearer(authorization);
    return token !== undefined && this.reviewer.accepted?.(token) === true;
  }
}
