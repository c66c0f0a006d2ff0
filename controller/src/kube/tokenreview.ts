/**
 * Bearer tokens checked by the API server (TokenReview), with results cached until the
 * token's own expiry (at most `maxCacheMs`), so a busy API or a reconnecting fleet does not
 * turn into one TokenReview per request.
 */
import { createHash } from 'node:crypto';
import { AuthenticationV1Api, type KubeConfig } from '@kubernetes/client-node';
import { decodeJwt } from 'jose';

export interface ReviewedUser {
  username: string;
  uid?: string;
  groups: string[];
  extra: Record<string, string[]>;
}

export type TokenVerdict = { authenticated: true; user: ReviewedUser } | { authenticated: false; reason: string };

export class TokenReviewer {
  private readonly api: AuthenticationV1Api;
  private readonly cache = new Map<string, { verdict: TokenVerdict; until: number }>();

  constructor(
    kc: KubeConfig,
    private readonly opts: { audiences?: string[]; maxCacheMs?: number; now?: () => number } = {},
  ) {
    this.api = kc.makeApiClient(AuthenticationV1Api);
  }

  /** Whether `token` was accepted and its verdict is still cached. */
  accepted(token: string): boolean {
    const hit = this.cache.get(createHash('sha256').update(token).digest('base64'));
    return hit !== undefined && hit.verdict.authenticated && hit.until > (this.opts.now ?? Date.now)();
  }

  async review(token: string): Promise<TokenVerdict> {
    const now = (this.opts.now ?? Date.now)();
    const key = createHash('sha256').update(token).digest('base64');
    const hit = this.cache.get(key);
    if (hit && hit.until > now) return hit.verdict;
    const res = await this.api.createTokenReview({
      body: {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenReview',
        spec: { token, ...(this.opts.audiences ? { audiences: this.opts.audiences } : {}) },
      },
    });
    const s = res.status;
    // An authenticator that ignores audiences answers without them: then the token is not for us.
    const audienceOk = !this.opts.audiences || (s?.audiences ?? []).some((a) => this.opts.audiences!.includes(a));
    const verdict: TokenVerdict =
      s?.authenticated && s.user?.username && audienceOk
        ? {
            authenticated: true,
            user: { username: s.user.username, ...(s.user.uid ? { uid: s.user.uid } : {}), groups: s.user.groups ?? [], extra: s.user.extra ?? {} },
          }
        : {
            authenticated: false,
            reason:
              s?.error ||
              (s?.authenticated && !audienceOk
                ? `the token is not issued for ${this.opts.audiences!.join(' or ')}`
                : 'the API server did not authenticate the token'),
          };
    let exp = now + (this.opts.maxCacheMs ?? 5 * 60_000);
    try {
      const claims = decodeJwt(token);
      if (typeof claims.exp === 'number') exp = Math.min(exp, claims.exp * 1000);
    } catch {
      // not a JWT: cache for the default time
    }
    // Refusals are cached briefly: a fixed token should work again soon.
    this.cache.set(key, { verdict, until: verdict.authenticated ? exp : now + 10_000 });
    if (this.cache.size > 10_000) this.cache.delete(this.cache.keys().next().value!);
    return verdict;
  }
}
