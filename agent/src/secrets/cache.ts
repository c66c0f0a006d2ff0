/**
 * Values read as each pod, kept in memory per pod: one session of the secret source (Vault,
 * or local mode's embedded store) per pod, one read in flight per path, and a cached version
 * served while the source confirmed it less than maxStaleness ago.
 */
import { AgentErrorCodes } from '../errors.ts';
import type { Caller } from './caller.ts';
import type { KvVersion, WatchLine } from './document.ts';
import { secretsError } from './errors.ts';
import type { SecretRef } from './references.ts';
import type { SecretSession, SecretSource } from './source.ts';

export interface CacheEntry extends KvVersion {
  /** Last time Vault confirmed this version is current. */
  checkedAt: number;
}

/** What a watcher is: the stream of one container; `send` writes a line, `close` ends it. */
export interface PodWatcher {
  caller: Caller;
  send(line: WatchLine): void;
  close(): void;
}

export interface PodState {
  session: SecretSession;
  namespace: string;
  pod: string;
  entries: Map<string, CacheEntry>;
  inflight: Map<string, Promise<CacheEntry>>;
  watchers: Set<PodWatcher>;
}

export class PodCache {
  readonly pods = new Map<string, PodState>();

  constructor(
    private readonly source: SecretSource,
    private readonly maxStalenessMs: number,
  ) {}

  /** The pod's state, created with a session of the source for `role` on its first call. */
  open(uid: string, pod: { namespace: string; name: string; role: string }, token: string): PodState {
    let state = this.pods.get(uid);
    if (!state) {
      state = {
        session: this.source.session(pod, token),
        namespace: pod.namespace,
        pod: pod.name,
        entries: new Map(),
        inflight: new Map(),
        watchers: new Set(),
      };
      this.pods.set(uid, state);
    }
    state.session.updateToken(token);
    return state;
  }

  /** The cached version while fresh enough, else one shared read from Vault. */
  entry(uid: string, state: PodState, ref: Pick<SecretRef, 'mount' | 'path' | 'id'>): Promise<CacheEntry> {
    const cached = state.entries.get(ref.id);
    if (cached && Date.now() - cached.checkedAt <= this.maxStalenessMs) return Promise.resolve(cached);
    let pending = state.inflight.get(ref.id);
    if (!pending) {
      pending = state.session
        .readKv(ref)
        .then((r) => {
          const e: CacheEntry = { ref, data: r.data, version: r.version, checkedAt: Date.now() };
          if (this.pods.get(uid) === state) state.entries.set(ref.id, e);
          return e;
        })
        .catch((err: { code?: string }) => {
          if (cached && err.code === AgentErrorCodes.SECRETS_VAULT_UNAVAILABLE) {
            throw secretsError(
              'VAULT_UNAVAILABLE',
              `Vault is unreachable and the cached ${ref.id} was last confirmed ${Math.round((Date.now() - cached.checkedAt) / 1000)} s ago, more than maxStaleness allows; retry when Vault is back`,
            );
          }
          throw err;
        })
        .finally(() => state.inflight.delete(ref.id));
      state.inflight.set(ref.id, pending);
    }
    return pending;
  }

  /** Forgets the pod: its watchers are closed, its values dropped and its Vault token revoked. */
  async forget(uid: string): Promise<void> {
    const state = this.pods.get(uid);
    this.pods.delete(uid);
    if (!state) return;
    for (const w of state.watchers) w.close();
    state.entries.clear();
    await state.session.revoke();
  }
}
