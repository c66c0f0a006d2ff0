/**
 * Who may read the agent's /metrics, which names every pod of the node. Decided the way the
 * kubelet decides for its own /metrics: the caller's bearer token goes to a TokenReview, the
 * user it names to a SubjectAccessReview for `get` on `nodes/metrics` of this node. A
 * Prometheus whose service account already scrapes kubelets needs nothing more.
 *
 * Decisions are cached by the token's sha256 (the token itself is never kept, logged or
 * echoed): allows for a minute, refusals for ten seconds, so a 15 s scrape costs one pair of
 * reviews a minute and a freshly bound role works soon. The kubelet caches longer (2 min for
 * tokens, 5 min for allows). An API server that cannot answer gives a 503 that is not cached.
 */
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';

import { ErrorCodes, NemuError } from '#common/errors.js';
import type { Logger } from '#common/log.js';

import type { AgentConfig } from '../config.ts';
import {
  type AccessVerdict,
  type ResourceAttributes,
  reviewAccess,
  type ReviewClient,
  type ReviewedUser,
  reviewToken,
  type TokenVerdict,
} from '../kube/reviews.ts';

/** What the kubelet's authorizer asks for its /metrics, for the node `nodeName`. */
export function nodeMetricsAttributes(nodeName: string): ResourceAttributes {
  return { verb: 'get', group: '', resource: 'nodes', subresource: 'metrics', name: nodeName };
}

export interface AccessReviews {
  reviewToken(token: string): Promise<TokenVerdict>;
  reviewAccess(user: ReviewedUser, resource: ResourceAttributes): Promise<AccessVerdict>;
}

export function kubeReviews(kube: ReviewClient): AccessReviews {
  return { reviewToken: (token) => reviewToken(kube, token), reviewAccess: (user, resource) => reviewAccess(kube, user, resource) };
}

export type AccessDecision = { allowed: true; user: string } | { allowed: false; status: 401 | 403 | 503; error: NemuError };

export interface MetricsAccessOptions {
  nodeName: string;
  reviews: AccessReviews;
  log: Logger;
  /** How long an allow is trusted. Default 60 s. */
  allowTtlMs?: number;
  /** How long a refusal (401 or 403) is remembered. Default 10 s. */
  denyTtlMs?: number;
  /** Tokens remembered at most; the oldest are forgotten first. Default 1024. */
  maxEntries?: number;
  now?: () => number;
}

const ANONYMOUS = new NemuError(
  ErrorCodes.UNAUTHORIZED,
  "the agent's /metrics needs a bearer token of a user allowed to get nodes/metrics (as the kubelet's /metrics does); see docs/agent-metrics.md",
  { status: 401 },
);

function refused(status: 401 | 403 | 503, error: NemuError): AccessDecision {
  return { allowed: false, status, error };
}

export class MetricsAccess {
  private readonly settled = new Map<string, { decision: AccessDecision; until: number }>();
  private readonly pending = new Map<string, Promise<AccessDecision>>();
  private readonly attributes: ResourceAttributes;
  private readonly now: () => number;

  constructor(private readonly opts: MetricsAccessOptions) {
    this.attributes = nodeMetricsAttributes(opts.nodeName);
    this.now = opts.now ?? Date.now;
  }

  /** Tokens whose decision is remembered (for tests and diagnostics). */
  get size(): number {
    return this.settled.size;
  }

  /**
   * The decision for a request's Authorization header: synchronous when it is remembered, so
   * an allowed scrape goes straight to the page; a promise when the API server is asked
   * (concurrent scrapes with the same token share one review).
   */
  check(authorization: string | undefined): AccessDecision | Promise<AccessDecision> {
    const token = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '')?.[1];
    if (!token) return refused(401, ANONYMOUS);
    const key = createHash('sha256').update(token).digest('base64');
    const hit = this.settled.get(key);
    if (hit) {
      if (hit.until > this.now()) return hit.decision;
      this.settled.delete(key);
    }
    let review = this.pending.get(key);
    if (!review) {
      review = this.review(token).then((decision) => {
        this.pending.delete(key);
        if (decision.allowed || decision.status !== 503) this.remember(key, decision);
        return decision;
      });
      this.pending.set(key, review);
    }
    return review;
  }

  private remember(key: string, decision: AccessDecision): void {
    while (this.settled.size >= (this.opts.maxEntries ?? 1024)) this.settled.delete(this.settled.keys().next().value!);
    this.settled.set(key, { decision, until: this.now() + (decision.allowed ? (this.opts.allowTtlMs ?? 60_000) : (this.opts.denyTtlMs ?? 10_000)) });
  }

  private async review(token: string): Promise<AccessDecision> {
    const { log } = this.opts;
    try {
      const who = await this.opts.reviews.reviewToken(token);
      if (!who.authenticated) {
        log.info({ reason: who.reason }, 'refused a /metrics scrape: the API server did not authenticate its token');
        return refused(
          401,
          new NemuError(
            ErrorCodes.UNAUTHORIZED,
            'the API server did not authenticate the bearer token; send a valid service-account token (bearer_token_file in Prometheus)',
            { status: 401 },
          ),
        );
      }
      const { username } = who.user;
      const access = await this.opts.reviews.reviewAccess(who.user, this.attributes);
      if (!access.allowed) {
        log.info({ user: username, reason: access.reason }, 'refused a /metrics scrape: no get nodes/metrics');
        return refused(
          403,
          new NemuError(
            ErrorCodes.FORBIDDEN,
            `${username} may not get nodes/metrics (node ${this.opts.nodeName}), which the agent's /metrics requires as the kubelet's does; bind it to a ClusterRole granting get on nodes/metrics, such as nemutator-metrics-reader${access.reason ? ` (${access.reason})` : ''}`,
            { status: 403 },
          ),
        );
      }
      log.debug({ user: username }, 'allowed /metrics scrapes');
      return { allowed: true, user: username };
    } catch (e) {
      // Whatever failed, its message may quote the request it failed on: the token is cut out.
      const message = ((e as Error).message ?? String(e)).split(token).join('<token>');
      const error = new NemuError(
        e instanceof NemuError ? e.code : ErrorCodes.INTERNAL,
        e instanceof NemuError ? message : `checking the /metrics caller failed: ${message}`,
        { status: 503 },
      );
      log.warn({ err: error.message }, 'cannot check a /metrics caller; answering 503');
      return refused(503, error);
    }
  }
}

/** 127.0.0.0/8, ::1, localhost: an address only this host's (or this pod's) processes reach. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '::1') return true;
  const v4 = h.startsWith('::ffff:') ? h.slice(7) : h;
  return isIP(v4) === 4 && v4.startsWith('127.');
}

export type MetricsAuthPlan = { mode: 'kube' } | { mode: 'open'; warning?: string };

/**
 * How /metrics is guarded, from `metricsAuth` and whether the agent has an API server. The
 * default never serves the page openly beyond loopback: without an API server to review
 * tokens, a non-loopback host is a configuration error.
 */
export function planMetricsAuth(config: Pick<AgentConfig, 'metricsAuth' | 'host' | 'metricsPort'>, hasCluster: boolean): MetricsAuthPlan {
  const where = `${config.host}:${config.metricsPort}`;
  switch (config.metricsAuth) {
    case 'none':
      return isLoopback(config.host)
        ? { mode: 'open' }
        : {
            mode: 'open',
            warning: `metricsAuth is none: /metrics, which names every pod of this node, is served without authentication to anyone who reaches ${where}`,
          };
    case 'kube':
      if (!hasCluster) {
        throw new NemuError(
          ErrorCodes.CONFIG,
          'metricsAuth is kube but the agent has no API server to review tokens with (kubeconfig is empty and it does not run in a pod); set --kubeconfig, or --metrics-auth none with --host 127.0.0.1',
        );
      }
      return { mode: 'kube' };
    case 'auto':
      if (hasCluster) return { mode: 'kube' };
      if (isLoopback(config.host)) return { mode: 'open' };
      throw new NemuError(
        ErrorCodes.CONFIG,
        `the agent has no API server (kubeconfig is empty and it does not run in a pod), so /metrics cannot check who reads it, and host = ${config.host} would serve every pod of this node to the network; set --host 127.0.0.1, set --kubeconfig, or set --metrics-auth none to serve it unauthenticated anyway`,
      );
  }
}
