/**
 * Rotation: every cached path is checked against Vault's current KV v2 version on an interval
 * (with ±10 % jitter) or when forced; a new version replaces the cached one and is pushed to
 * the pod's watchers. A failed check leaves the entry to age (reads then decide with
 * maxStaleness) and is logged and counted — never silently dropped.
 */
import type { Logger } from '#common/log.js';

import { AgentErrorCodes } from '../errors.ts';
import type { CacheEntry, PodCache, PodState, PodWatcher } from './cache.ts';

export interface RotateOutcome {
  pathsChecked: number;
  newVersions: number;
  watchersNotified: number;
}

export interface RotationOptions {
  cache: PodCache;
  intervalMs: number;
  log: Logger;
  /** Counts failed checks by error code (the agent's nemutator_agent_secrets_rotation_errors_total). */
  countError(code: string): void;
  /** Sends a new version to one watcher; false when the watcher declares none of its keys. */
  push(w: PodWatcher, e: CacheEntry): boolean;
}

/** Vault requests a rotation keeps in flight at once: a node with many pods must not open thousands. */
const CONCURRENCY = 16;

export class Rotation {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<RotateOutcome> | undefined;

  constructor(private readonly opts: RotationOptions) {}

  start(): void {
    const schedule = () => {
      const jitter = this.opts.intervalMs * 0.1 * (Math.random() * 2 - 1);
      this.timer = setTimeout(() => void this.rotate().finally(schedule), this.opts.intervalMs + jitter);
      this.timer.unref();
    };
    schedule();
  }

  stop(): void {
    clearTimeout(this.timer);
  }

  /** Checks every cached path (or one path id), fetches new versions and notifies watchers. */
  async rotate(only?: string): Promise<RotateOutcome> {
    // A forced rotation during a periodic one waits for it, then runs: it must see the newest.
    while (this.running) await this.running.catch(() => undefined);
    this.running = this.rotateNow(only);
    try {
      return await this.running;
    } finally {
      this.running = undefined;
    }
  }

  private async rotateNow(only: string | undefined): Promise<RotateOutcome> {
    const out: RotateOutcome = { pathsChecked: 0, newVersions: 0, watchersNotified: 0 };
    const jobs: Array<() => Promise<void>> = [];
    for (const [uid, state] of this.opts.cache.pods) {
      for (const e of state.entries.values()) {
        if (!only || e.ref.id === only) jobs.push(() => this.check(uid, state, e, out));
      }
    }
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(CONCURRENCY, jobs.length) }, async () => {
        while (next < jobs.length) await jobs[next++]!();
      }),
    );
    return out;
  }

  private async check(uid: string, state: PodState, e: CacheEntry, out: RotateOutcome): Promise<void> {
    out.pathsChecked++;
    try {
      const current = await state.session.currentVersion(e.ref);
      if (current !== undefined && current <= e.version) {
        e.checkedAt = Date.now();
        return;
      }
      const r = await state.session.readKv(e.ref);
      if (this.opts.cache.pods.get(uid) !== state) return;
      const fresh: CacheEntry = { ref: e.ref, data: r.data, version: r.version, checkedAt: Date.now() };
      state.entries.set(e.ref.id, fresh);
      if (r.version <= e.version) return;
      out.newVersions++;
      for (const w of state.watchers) if (this.opts.push(w, fresh)) out.watchersNotified++;
    } catch (err) {
      // Vault away or the pod's access revoked: the entry ages; reads decide with maxStaleness.
      const code = (err as { code?: string }).code ?? AgentErrorCodes.SECRETS_INTERNAL;
      this.opts.countError(code);
      this.opts.log.warn(
        { code, path: e.ref.id, namespace: state.namespace, pod: state.pod, err: (err as Error).message },
        'secrets rotation check failed; the cached version ages until Vault answers',
      );
    }
  }
}
