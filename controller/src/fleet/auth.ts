/**
 * Who may speak for a node on the fleet link. The agent's Hello carries a token; an
 * authenticator says whether it is valid and for which node.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

export type AgentVerdict = { ok: true; node: string } | { ok: false; reason: string };

export interface AgentAuthenticator {
  verify(hello: { token: string; nodeName: string }): Promise<AgentVerdict>;
}

/** Local mode: one shared token, generated at start and handed to the in-process agent. */
export class SharedTokenAgentAuthenticator implements AgentAuthenticator {
  private readonly digest: Buffer;
  constructor(token: string) {
    this.digest = createHash('sha256').update(token).digest();
  }
  async verify(hello: { token: string; nodeName: string }): Promise<AgentVerdict> {
    if (!hello.token) return { ok: false, reason: 'the agent presented no token' };
    const got = createHash('sha256').update(hello.token).digest();
    if (!timingSafeEqual(got, this.digest)) return { ok: false, reason: 'the agent token is not valid' };
    if (!hello.nodeName) return { ok: false, reason: 'the agent did not say which node it runs on' };
    return { ok: true, node: hello.nodeName };
  }
}

/**
 * In a cluster: the agent's projected service-account token (audience "nemutator") is
 * reviewed by the API server; it must belong to the agent's service account, and be bound
 * to a pod on the node the agent claims (the node-name extra the API server adds to
 * pod-bound tokens, Kubernetes ≥ 1.30).
 */
export class TokenReviewAgentAuthenticator implements AgentAuthenticator {
  constructor(
    private readonly reviewer: { review(token: string): Promise<import('../kube/tokenreview.ts').TokenVerdict> },
    private readonly expected: { namespace: string; serviceAccount: string },
  ) {}

  async verify(hello: { token: string; nodeName: string }): Promise<AgentVerdict> {
    if (!hello.token) return { ok: false, reason: 'the agent presented no token' };
    const verdict = await this.reviewer.review(hello.token);
    if (!verdict.authenticated) return { ok: false, reason: `token refused by the API server: ${verdict.reason}` };
    const want = `system:serviceaccount:${this.expected.namespace}:${this.expected.serviceAccount}`;
    if (verdict.user.username !== want) return { ok: false, reason: `token belongs to ${verdict.user.username}, not the agent service account ${want}` };
    const node = verdict.user.extra['authentication.kubernetes.io/node-name']?.[0];
    if (!node) return { ok: false, reason: 'token is not bound to a pod on a node; mount a projected service-account token (audience nemutator)' };
    if (node !== hello.nodeName) return { ok: false, reason: `token is bound to node ${node}, but the agent claims node ${hello.nodeName}` };
    return { ok: true, node };
  }
}
