/**
 * What the secrets socket needs of the node's pods, on top of the agent's pod informer
 * (agent/src/kube/pods.ts): a pod by UID — waiting briefly for one the cgroup names before
 * the watch delivered it — and word when a pod is gone, to forget its tokens and values.
 */
import https from 'node:https';
import type { V1Pod } from '@kubernetes/client-node';
import type { JSONWebKeySet } from 'jose';

import type { KubeApi } from '../kube/api.ts';
import type { NodePods } from '../kube/pods.ts';

export interface PodDirectory {
  /** The pod with this UID, waiting up to `waitMs` for the watch to deliver a just-created pod. */
  byUid(uid: string, waitMs?: number): Promise<V1Pod | undefined>;
  /** `listener(uid)` for every pod `tracked()` named that the informer no longer has. */
  onGone(listener: (uid: string) => void, tracked: () => Iterable<string>): void;
  stop(): Promise<void>;
}

export function podDirectory(pods: Pick<NodePods, 'get'>, sweepMs = 2000): PodDirectory {
  const timers: NodeJS.Timeout[] = [];
  return {
    async byUid(uid, waitMs = 0) {
      const deadline = Date.now() + waitMs;
      for (;;) {
        const pod = pods.get(uid);
        if (pod || Date.now() >= deadline) return pod;
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    onGone(listener, tracked) {
      const t = setInterval(() => {
        for (const uid of [...tracked()]) if (!pods.get(uid)) listener(uid);
      }, sweepMs);
      t.unref();
      timers.push(t);
    },
    async stop() {
      for (const t of timers) clearInterval(t);
    },
  };
}

/** The API server's JWKS, fetched with the kubeconfig's TLS and credentials. */
export function jwksFetcher(kube: KubeApi, jwksUrl: string): () => Promise<JSONWebKeySet> {
  return async () => {
    const url = new URL(jwksUrl || `${kube.server}/openid/v1/jwks`);
    // The API server's own TLS and credentials only when the JWKS is on the API server.
    const onApi = url.origin === new URL(kube.server).origin;
    const opts: https.RequestOptions = onApi
      ? { ...kube.options(url), timeout: 5000 }
      : { method: 'GET', hostname: url.hostname, port: url.port, path: url.pathname + url.search, timeout: 5000 };
    const mod = url.protocol === 'http:' ? await import('node:http') : https;
    return new Promise((resolve, reject) => {
      const req = mod.request(opts, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          if (res.statusCode !== 200) return reject(new Error(`${url.href} answered ${res.statusCode}`));
          try {
            resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as JSONWebKeySet);
          } catch {
            reject(new Error(`${url.href} did not answer JSON`));
          }
        });
      });
      req.on('timeout', () => req.destroy(new Error(`${url.href} timed out`)));
      req.on('error', reject);
      req.end();
    });
  };
}
