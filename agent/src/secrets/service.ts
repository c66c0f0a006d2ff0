/**
 * The secrets service: the one object the socket server (server.ts) and the fleet commands
 * (rotate, secretStatus) talk to. It wires its jobs together: who is calling (caller.ts), the
 * per-pod cache of Vault reads (cache.ts), what a container is handed (document.ts), who holds
 * which version (holders.ts) and rotation (rotation.ts).
 */
import type { Logger } from '#common/log.js';

import { AgentErrorCodes } from '../errors.ts';
import type { AuditLog } from './audit.ts';
import { type CacheEntry, PodCache, type PodWatcher } from './cache.ts';
import { authenticateCaller, type Caller } from './caller.ts';
import { handOut, type SecretsDocument, type WatchLine } from './document.ts';
import { secretsError } from './errors.ts';
import { type Holder, Holders } from './holders.ts';
import type { CallerProcess } from './identity.ts';
import type { PodDirectory } from './pods.ts';
import { declaredFor, declaredPathIds, normalizePathId, type SecretRef } from './references.ts';
import { type RotateOutcome, Rotation } from './rotation.ts';
import type { SecretSource } from './source.ts';
import type { PodTokenVerifier } from './token.ts';

export type { Caller } from './caller.ts';
export type { SecretsDocument, WatchLine } from './document.ts';
export type { Holder } from './holders.ts';
export type { RotateOutcome } from './rotation.ts';

export interface SecretsServiceOptions {
  nodeName: string;
  pods: PodDirectory;
  verifier: PodTokenVerifier;
  /** Where values come from: Vault, or local mode's embedded store. */
  source: SecretSource;
  defaultAudience: string;
  maxStalenessMs: number;
  rotationIntervalMs: number;
  audit: AuditLog;
  log: Logger;
  /** Counts failed rotation checks by error code. */
  countRotationError(code: string): void;
  /** How long to wait for the pod watch to deliver a pod the cgroup names but the cache lacks. */
  podWaitMs?: number;
}

export class SecretsService {
  private readonly cache: PodCache;
  private readonly holders = new Holders();
  private readonly rotation: Rotation;
  readonly audit: AuditLog;

  constructor(private readonly opts: SecretsServiceOptions) {
    this.audit = opts.audit;
    this.cache = new PodCache(opts.source, opts.maxStalenessMs);
    this.rotation = new Rotation({
      cache: this.cache,
      intervalMs: opts.rotationIntervalMs,
      log: opts.log,
      countError: opts.countRotationError,
      push: (w, e) => this.push(w, e),
    });
    opts.pods.onGone(
      (uid) => void this.forgetPod(uid),
      () => this.cache.pods.keys(),
    );
  }

  async authenticate(proc: CallerProcess, token: string | undefined, container: string | undefined): Promise<Caller> {
    const caller = await authenticateCaller(this.opts, proc, token, container);
    const role = caller.spec.role || caller.pod.spec?.serviceAccountName || caller.claims.serviceAccount;
    this.cache.open(proc.podUid, { namespace: caller.namespace, name: caller.podName, role }, token!);
    return caller;
  }

  /** The caller container's env set and the pod's files; `onlyPath` narrows it to one declared path. */
  async secretsFor(caller: Caller, onlyPath?: string): Promise<SecretsDocument> {
    const state = this.cache.pods.get(caller.process.podUid);
    if (!state) throw secretsError('UNKNOWN_POD', 'the pod is gone');
    const only = onlyPath === undefined ? undefined : this.declaredPath(caller, onlyPath);
    const declared = declaredFor(caller.spec, caller.container);
    const refs = new Map<string, SecretRef>();
    for (const r of [...Object.values(declared.env), ...Object.values(declared.files)]) if (only === undefined || r.id === only) refs.set(r.id, r);
    const entries = new Map<string, CacheEntry>();
    await Promise.all([...refs.values()].map(async (r) => entries.set(r.id, await this.cache.entry(caller.process.podUid, state, r))));
    const doc: SecretsDocument = handOut(declared, entries, 'refuse');
    if (caller.spec.rotateSignal) doc.rotateSignal = caller.spec.rotateSignal;
    for (const [id, e] of entries) {
      this.holders.served(this.holderOf(caller), id, e.version);
      this.opts.audit.record('read', this.auditOf(caller, id, e.version));
    }
    return doc;
  }

  /** Subscribes a watcher; lines for versions newer than the container has seen are sent at once. */
  watch(caller: Caller, send: (line: WatchLine) => void, close: () => void): () => void {
    const state = this.cache.pods.get(caller.process.podUid);
    if (!state) throw secretsError('UNKNOWN_POD', 'the pod is gone');
    const w: PodWatcher = { caller, send, close };
    state.watchers.add(w);
    for (const id of declaredPathIds(caller.spec, caller.container)) {
      const e = state.entries.get(id);
      const h = this.holders.get(this.holderOf(caller), id);
      if (e && (!h || h.version < e.version)) this.push(w, e);
    }
    return () => state.watchers.delete(w);
  }

  ack(caller: Caller, path: unknown, version: unknown): void {
    if (typeof path !== 'string' || !Number.isSafeInteger(version) || (version as number) < 1) {
      throw secretsError('BAD_REQUEST', 'the body must be {"path":"<mount>/<path>","version":<integer ≥ 1>}');
    }
    const id = this.declaredPath(caller, path);
    this.holders.acked(this.holderOf(caller), id, version as number);
    this.opts.audit.record('ack', this.auditOf(caller, id, version as number));
  }

  status(path?: string): Holder[] {
    return this.holders.list(path ? normalizePathId(path) : undefined);
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

  start(): void {
    this.rotation.start();
  }

  /** Checks every cached path (or one), fetches new versions and notifies watchers. */
  rotate(path?: string): Promise<RotateOutcome> {
    return this.rotation.rotate(path ? normalizePathId(path) : undefined);
  }

  async forgetPod(uid: string): Promise<void> {
    this.holders.forgetPod(uid);
    await this.cache.forget(uid);
  }

  watcherCount(): number {
    let n = 0;
    for (const s of this.cache.pods.values()) n += s.watchers.size;
    return n;
  }

  async stop(): Promise<void> {
    this.rotation.stop();
    await Promise.all([...this.cache.pods.keys()].map((uid) => this.forgetPod(uid)));
  }

  /** The normalized path id when the caller's container declares it; else a denial. */
  private declaredPath(caller: Caller, path: string): string {
    const id = normalizePathId(path);
    if (declaredPathIds(caller.spec, caller.container).has(id)) return id;
    this.deny(caller, AgentErrorCodes.SECRETS_NOT_DECLARED, id);
    throw secretsError('NOT_DECLARED', `container "${caller.container}" of pod ${caller.namespace}/${caller.podName} does not declare ${id}`);
  }

  private holderOf(caller: Caller) {
    return { podUid: caller.process.podUid, namespace: caller.namespace, pod: caller.podName, container: caller.container };
  }

  private auditOf(caller: Caller, path: string, version: number) {
    return {
      podUid: caller.process.podUid,
      namespace: caller.namespace,
      pod: caller.podName,
      container: caller.container,
      pid: caller.process.pid,
      path,
      version,
    };
  }

  private push(w: PodWatcher, e: CacheEntry): boolean {
    const { caller } = w;
    const handed = handOut(declaredFor(caller.spec, caller.container), new Map([[e.ref.id, e]]), 'omit');
    if (Object.keys(handed.env).length === 0 && Object.keys(handed.files).length === 0) return false;
    w.send({ path: e.ref.id, version: e.version, ...handed });
    this.holders.served(this.holderOf(caller), e.ref.id, e.version);
    this.opts.audit.record('push', this.auditOf(caller, e.ref.id, e.version));
    return true;
  }
}
