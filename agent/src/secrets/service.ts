/**
 * The secrets service: who is calling (kernel + token), what the pod declared, values read
 * from Vault as the pod and cached in memory, rotation (KV v2 versions checked on an interval
 * with jitter, or forced), watchers, acks and the holders' status. The socket server
 * (server.ts) is its HTTP face; the fleet commands (rotate, secretStatus) call it too.
 */
import type { V1Pod } from '@kubernetes/client-node';
import { AuditLog } from './audit.ts';
import { secretsError } from './errors.ts';
import type { CallerProcess } from './identity.ts';
import type { PodDirectory } from './pods.ts';
import { AUDIENCE_ANNOTATION, declaredFor, declaredPathIds, normalizePathId, parseSecretsAnnotation, type PodSecretsSpec, type SecretRef } from './references.ts';
import type { PodClaims, PodTokenVerifier } from './token.ts';
import { VaultSession, type VaultOptions } from './vault.ts';

export interface Caller {
  process: CallerProcess;
  claims: PodClaims;
  pod: V1Pod;
  namespace: string;
  podName: string;
  container: string;
  spec: PodSecretsSpec;
}

export interface SecretsDocument {
  env: Record<string, { value: string; version: number; path: string }>;
  files: Record<string, { value: string; version: number; path: string }>;
  rotateSignal?: string;
}

export interface WatchLine {
  path: string;
  version: number;
  env: SecretsDocument['env'];
  files: SecretsDocument['files'];
}

export interface Holder {
  podUid: string;
  namespace: string;
  pod: string;
  container: string;
  path: string;
  version: number;
  ackedVersion: number;
  ackedUnixMs: number;
}

interface CacheEntry {
  ref: Pick<SecretRef, 'mount' | 'path' | 'id'>;
  data: Record<string, string>;
  version: number;
  /** Last time Vault confirmed this version is current. */
  checkedAt: number;
}

interface PodState {
  session: VaultSession;
  namespace: string;
  pod: string;
  entries: Map<string, CacheEntry>;
  inflight: Map<string, Promise<CacheEntry>>;
  watchers: Set<Watcher>;
}

interface Watcher {
  caller: Caller;
  send(line: WatchLine): void;
  close(): void;
}

export interface SecretsServiceOptions {
  nodeName: string;
  pods: PodDirectory;
  verifier: PodTokenVerifier;
  vault: VaultOptions;
  defaultAudience: string;
  maxStalenessMs: number;
  rotationIntervalMs: number;
  audit: AuditLog;
  /** How long to wait for the pod watch to deliver a pod the cgroup names but the cache lacks. */
  podWaitMs?: number;
}

export interface RotateOutcome {
  pathsChecked: number;
  newVersions: number;
  watchersNotified: number;
}

export class SecretsService {
  private readonly pods = new Map<string, PodState>();
  private readonly holders = new Map<string, Holder>();
  private timer: NodeJS.Timeout | undefined;
  private rotating: Promise<RotateOutcome> | undefined;
  readonly audit: AuditLog;

  constructor(private readonly opts: SecretsServiceOptions) {
    this.audit = opts.audit;
    opts.pods.onGone((uid) => void this.forgetPod(uid), () => this.pods.keys());
  }

  // ---- identity ----

  async authenticate(proc: CallerProcess, token: string | undefined, container: string | undefined): Promise<Caller> {
    if (!token) throw secretsError('UNAUTHENTICATED', 'send the pod token: Authorization: Bearer <contents of NEMUTATOR_TOKEN_FILE>');
    if (!container) throw secretsError('BAD_REQUEST', 'send the container name in X-Nemutator-Container (NEMUTATOR_CONTAINER)');
    const pod = await this.opts.pods.byUid(proc.podUid, this.opts.podWaitMs ?? 2000);
    if (!pod) throw secretsError('UNKNOWN_POD', `the API server lists no pod ${proc.podUid} on node ${this.opts.nodeName}`);
    const audience = pod.metadata?.annotations?.[AUDIENCE_ANNOTATION] || this.opts.defaultAudience;
    const claims = await this.opts.verifier.verify(token, audience);
    if (claims.nodeName !== undefined && claims.nodeName !== this.opts.nodeName) {
      throw secretsError('WRONG_NODE', `the token is bound to node ${claims.nodeName}, this is node ${this.opts.nodeName}`);
    }
    if (pod.spec?.nodeName !== this.opts.nodeName) throw secretsError('WRONG_NODE', `pod ${proc.podUid} is not bound to node ${this.opts.nodeName}`);
    if (claims.podUid !== proc.podUid) {
      throw secretsError('TOKEN_MISMATCH', "the token belongs to another pod than the calling process; a pod may only present its own token");
    }
    if (claims.namespace !== pod.metadata?.namespace || claims.podName !== pod.metadata?.name) {
      throw secretsError('TOKEN_MISMATCH', 'the token names another pod than the one the API server knows by this UID');
    }
    const names = [...(pod.spec?.containers ?? []), ...(pod.spec?.initContainers ?? [])].map((c) => c.name);
    if (!names.includes(container)) throw secretsError('CONTAINER_MISMATCH', `pod ${claims.namespace}/${claims.podName} has no container "${container}"`);
    const statuses = [...(pod.status?.containerStatuses ?? []), ...(pod.status?.initContainerStatuses ?? [])];
    const known = statuses.find((s) => s.containerID?.replace(/^[a-z-]+:\/\//, '') === proc.containerId);
    if (known && known.name !== container) {
      throw secretsError('CONTAINER_MISMATCH', `the calling process runs in container "${known.name}", not "${container}"`);
    }
    const spec = parseSecretsAnnotation(pod.metadata?.annotations);
    if (!spec) throw secretsError('NOT_DECLARED', `pod ${claims.namespace}/${claims.podName} declares no secrets (annotation nemutator.io/secrets)`);
    const state = this.podState(proc.podUid, pod, spec, claims, token);
    state.session.updateToken(token);
    return { process: proc, claims, pod, namespace: claims.namespace, podName: claims.podName, container, spec };
  }

  private podState(uid: string, pod: V1Pod, spec: PodSecretsSpec, claims: PodClaims, token: string): PodState {
    let state = this.pods.get(uid);
    if (!state) {
      const role = spec.role || pod.spec?.serviceAccountName || claims.serviceAccount;
      state = { session: new VaultSession(this.opts.vault, role, token), namespace: claims.namespace, pod: claims.podName, entries: new Map(), inflight: new Map(), watchers: new Set() };
      this.pods.set(uid, state);
    }
    return state;
  }

  // ---- reads ----

  private async entry(uid: string, state: PodState, ref: Pick<SecretRef, 'mount' | 'path' | 'id'>): Promise<CacheEntry> {
    const cached = state.entries.get(ref.id);
    if (cached && Date.now() - cached.checkedAt <= this.opts.maxStalenessMs) return cached;
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
          if (cached && err.code === 'NEMU_ERR_SECRETS_VAULT_UNAVAILABLE') {
            throw secretsError('VAULT_UNAVAILABLE', `Vault is unreachable and the cached ${ref.id} was last confirmed ${Math.round((Date.now() - cached.checkedAt) / 1000)} s ago, more than maxStaleness allows; retry when Vault is back`);
          }
          throw err;
        })
        .finally(() => state.inflight.delete(ref.id));
      state.inflight.set(ref.id, pending);
    }
    return pending;
  }

  private valueOf(e: CacheEntry, ref: SecretRef): string {
    const v = e.data[ref.key];
    if (v === undefined) throw secretsError('NOT_FOUND', `Vault's secret ${ref.id} (version ${e.version}) has no key "${ref.key}"`);
    return v;
  }

  /** The caller container's env set and the pod's files; `onlyPath` narrows it to one declared path. */
  async secretsFor(caller: Caller, onlyPath?: string): Promise<SecretsDocument> {
    const state = this.pods.get(caller.process.podUid);
    if (!state) throw secretsError('UNKNOWN_POD', 'the pod is gone');
    const declared = declaredFor(caller.spec, caller.container);
    const only = onlyPath === undefined ? undefined : normalizePathId(onlyPath);
    if (only !== undefined && !declaredPathIds(caller.spec, caller.container).has(only)) {
      this.deny(caller, 'NEMU_ERR_SECRETS_NOT_DECLARED', only);
      throw secretsError('NOT_DECLARED', `container "${caller.container}" of pod ${caller.namespace}/${caller.podName} does not declare ${only}`);
    }
    const refs = new Map<string, SecretRef>();
    for (const r of [...Object.values(declared.env), ...Object.values(declared.files)]) if (only === undefined || r.id === only) refs.set(r.id, r);
    const entries = new Map<string, CacheEntry>();
    await Promise.all([...refs.values()].map(async (r) => entries.set(r.id, await this.entry(caller.process.podUid, state, r))));
    const doc: SecretsDocument = { env: {}, files: {} };
    for (const [name, r] of Object.entries(declared.env)) {
      const e = entries.get(r.id);
      if (e) doc.env[name] = { value: this.valueOf(e, r), version: e.version, path: r.id };
    }
    for (const [name, r] of Object.entries(declared.files)) {
      const e = entries.get(r.id);
      if (e) doc.files[name] = { value: this.valueOf(e, r), version: e.version, path: r.id };
    }
    if (caller.spec.rotateSignal) doc.rotateSignal = caller.spec.rotateSignal;
    for (const [id, e] of entries) {
      this.served(caller, id, e.version);
      this.opts.audit.record('read', this.auditOf(caller, id, e.version));
    }
    return doc;
  }

  // ---- watch, ack, status ----

  /** Subscribes a watcher; lines for versions newer than the container has seen are sent at once. */
  watch(caller: Caller, send: (line: WatchLine) => void, close: () => void): () => void {
    const state = this.pods.get(caller.process.podUid);
    if (!state) throw secretsError('UNKNOWN_POD', 'the pod is gone');
    const w: Watcher = { caller, send, close };
    state.watchers.add(w);
    for (const id of declaredPathIds(caller.spec, caller.container)) {
      const e = state.entries.get(id);
      const h = this.holders.get(this.holderKey(caller, id));
      if (e && (!h || h.version < e.version)) this.push(w, e);
    }
    return () => state.watchers.delete(w);
  }

  ack(caller: Caller, path: unknown, version: unknown): void {
    if (typeof path !== 'string' || !Number.isSafeInteger(version) || (version as number) < 1) {
      throw secretsError('BAD_REQUEST', 'the body must be {"path":"<mount>/<path>","version":<integer ≥ 1>}');
    }
    const id = normalizePathId(path);
    if (!declaredPathIds(caller.spec, caller.container).has(id)) {
      this.deny(caller, 'NEMU_ERR_SECRETS_NOT_DECLARED', id);
      throw secretsError('NOT_DECLARED', `container "${caller.container}" does not declare ${id}`);
    }
    const h = this.holder(caller, id);
    h.ackedVersion = version as number;
    h.ackedUnixMs = Date.now();
    this.opts.audit.record('ack', this.auditOf(caller, id, version as number));
  }

  status(path?: string): Holder[] {
    const id = path ? normalizePathId(path) : '';
    return [...this.holders.values()].filter((h) => !id || h.path === id).map((h) => ({ ...h }));
  }

  deny(caller: Partial<Caller> & { process?: CallerProcess }, code: string, path?: string): void {
    this.opts.audit.record('deny', {
      ...(caller.process ? { podUid: caller.process.podUid, pid: caller.process.pid } : {}),
      ...(caller.namespace ? { namespace: caller.namespace, pod: caller.podName } : {}),
      ...(caller.container ? { container: caller.container } : {}),
      ...(path ? { path } : {}),
      code,
    });
  }

  private holderKey(caller: Caller, id: string): string {
    return `${caller.process.podUid}\0${caller.container}\0${id}`;
  }

  private holder(caller: Caller, id: string): Holder {
    const key = this.holderKey(caller, id);
    let h = this.holders.get(key);
    if (!h) {
      h = { podUid: caller.process.podUid, namespace: caller.namespace, pod: caller.podName, container: caller.container, path: id, version: 0, ackedVersion: 0, ackedUnixMs: 0 };
      this.holders.set(key, h);
    }
    return h;
  }

  private served(caller: Caller, id: string, version: number): void {
    const h = this.holder(caller, id);
    if (version > h.version) h.version = version;
  }

  private auditOf(caller: Caller, path: string, version: number) {
    return { podUid: caller.process.podUid, namespace: caller.namespace, pod: caller.podName, container: caller.container, pid: caller.process.pid, path, version };
  }

  private push(w: Watcher, e: CacheEntry): boolean {
    const { caller } = w;
    const declared = declaredFor(caller.spec, caller.container);
    const line: WatchLine = { path: e.ref.id, version: e.version, env: {}, files: {} };
    let any = false;
    for (const [name, r] of Object.entries(declared.env)) {
      if (r.id !== e.ref.id || e.data[r.key] === undefined) continue;
      line.env[name] = { value: e.data[r.key]!, version: e.version, path: r.id };
      any = true;
    }
    for (const [name, r] of Object.entries(declared.files)) {
      if (r.id !== e.ref.id || e.data[r.key] === undefined) continue;
      line.files[name] = { value: e.data[r.key]!, version: e.version, path: r.id };
      any = true;
    }
    if (!any) return false;
    w.send(line);
    this.served(caller, e.ref.id, e.version);
    this.opts.audit.record('push', this.auditOf(caller, e.ref.id, e.version));
    return true;
  }

  // ---- rotation ----

  start(): void {
    const schedule = () => {
      const jitter = this.opts.rotationIntervalMs * 0.1 * (Math.random() * 2 - 1);
      this.timer = setTimeout(() => {
        void this.rotate().finally(schedule);
      }, this.opts.rotationIntervalMs + jitter);
      this.timer.unref();
    };
    schedule();
  }

  /** Checks every cached path (or one), fetches new versions and notifies watchers. */
  async rotate(path?: string): Promise<RotateOutcome> {
    // A forced rotation during a periodic one waits for it, then runs: it must see the newest.
    while (this.rotating) await this.rotating.catch(() => undefined);
    this.rotating = this.rotateNow(path ? normalizePathId(path) : undefined);
    try {
      return await this.rotating;
    } finally {
      this.rotating = undefined;
    }
  }

  private async rotateNow(only: string | undefined): Promise<RotateOutcome> {
    const out: RotateOutcome = { pathsChecked: 0, newVersions: 0, watchersNotified: 0 };
    const jobs: Array<() => Promise<void>> = [];
    for (const [uid, state] of this.pods) {
      for (const e of state.entries.values()) {
        if (only && e.ref.id !== only) continue;
        jobs.push(async () => {
          out.pathsChecked++;
          try {
            const current = await state.session.currentVersion(e.ref);
            if (current !== undefined && current <= e.version) {
              e.checkedAt = Date.now();
              return;
            }
            const r = await state.session.readKv(e.ref);
            const fresh: CacheEntry = { ref: e.ref, data: r.data, version: r.version, checkedAt: Date.now() };
            if (this.pods.get(uid) !== state) return;
            state.entries.set(e.ref.id, fresh);
            if (r.version <= e.version) return;
            out.newVersions++;
            for (const w of state.watchers) if (this.push(w, fresh)) out.watchersNotified++;
          } catch {
            // Vault away or the pod's access revoked: the entry ages; reads decide with maxStaleness.
          }
        });
      }
    }
    // Bounded concurrency: a node with many pods must not open thousands of Vault requests.
    let next = 0;
    await Promise.all(Array.from({ length: Math.min(16, jobs.length) }, async () => {
      while (next < jobs.length) await jobs[next++]!();
    }));
    return out;
  }

  // ---- lifecycle ----

  async forgetPod(uid: string): Promise<void> {
    const state = this.pods.get(uid);
    this.pods.delete(uid);
    for (const [k, h] of this.holders) if (h.podUid === uid) this.holders.delete(k);
    if (!state) return;
    for (const w of state.watchers) w.close();
    state.entries.clear();
    await state.session.revoke();
  }

  watcherCount(): number {
    let n = 0;
    for (const s of this.pods.values()) n += s.watchers.size;
    return n;
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    await Promise.all([...this.pods.keys()].map((uid) => this.forgetPod(uid)));
  }
}
