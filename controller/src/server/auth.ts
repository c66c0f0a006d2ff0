/** Local-mode authentication: one admin token, compared in constant time. */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
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
  constructor(token: string, private readonly identity: Identity = { username: 'nemutator:local-admin', groups: ['system:masters'] }) {
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
  constructor(private readonly reviewer: { review(token: string): Promise<import('../kube/tokenreview.ts').TokenVerdict> }) {}

  async authenticate(authorization: string | undefined): Promise<Identity | undefined> {
    const token = bearer(authorization);
    if (!token) return undefined;
    const v = await this.reviewer.review(token);
    return v.authenticated ? { username: v.user.username, groups: v.user.groups, ...(v.user.uid ? { uid: v.user.uid } : {}) } : undefined;
  }
}
