/**
 * Leader election with a coordination.k8s.io Lease, as client-go's leaderelection does it:
 * the holder renews `renewTime` every `renewEveryMs`; another replica takes the lease only
 * when it has not been renewed for `leaseDurationMs`. Updates carry the resourceVersion, so
 * two replicas racing for an expired lease cannot both win (the loser gets 409).
 * Every replica serves admission; only singleton work waits for leadership.
 */
import { EventEmitter } from 'node:events';
import { CoordinationV1Api, type KubeConfig, type V1Lease } from '@kubernetes/client-node';

import type { Logger } from '#common/log.js';

export interface LeaderOptions {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs?: number;
  renewEveryMs?: number;
  log: Logger;
  now?: () => number;
}

function statusOf(e: unknown): number | undefined {
  return (e as { code?: number }).code ?? (e as { statusCode?: number }).statusCode;
}

export class LeaderElector extends EventEmitter {
  private readonly api: CoordinationV1Api;
  private timer: NodeJS.Timeout | undefined;
  private leading = false;
  private stopped = true;
  private readonly leaseMs: number;
  private readonly renewMs: number;

  constructor(
    kc: KubeConfig,
    private readonly opts: LeaderOptions,
  ) {
    super();
    this.api = kc.makeApiClient(CoordinationV1Api);
    this.leaseMs = opts.leaseDurationMs ?? 15_000;
    this.renewMs = opts.renewEveryMs ?? Math.floor(this.leaseMs / 3);
  }

  get isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    void this.tick();
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.tick(), this.renewMs);
    this.timer.unref();
  }

  private setLeading(v: boolean): void {
    if (v === this.leading) return;
    this.leading = v;
    this.opts.log.info({ identity: this.opts.identity, lease: this.opts.name }, v ? 'became leader' : 'lost leadership');
    this.emit(v ? 'started' : 'stopped');
  }

  /** One attempt to acquire or renew; exported for tests that drive time. */
  async tick(): Promise<void> {
    const now = (this.opts.now ?? Date.now)();
    const { namespace, name, identity } = this.opts;
    try {
      let lease: V1Lease | undefined;
      try {
        lease = await this.api.readNamespacedLease({ name, namespace });
      } catch (e) {
        if (statusOf(e) !== 404) throw e;
      }
      const stamp = new Date(now);
      if (!lease) {
        await this.api.createNamespacedLease({
          namespace,
          body: {
            apiVersion: 'coordination.k8s.io/v1',
            kind: 'Lease',
            metadata: { name, namespace },
            spec: { holderIdentity: identity, leaseDurationSeconds: Math.ceil(this.leaseMs / 1000), acquireTime: stamp, renewTime: stamp, leaseTransitions: 0 },
          },
        });
        this.setLeading(true);
      } else {
        const spec = lease.spec ?? {};
        const renewed = spec.renewTime ? new Date(spec.renewTime).getTime() : 0;
        const duration = (spec.leaseDurationSeconds ?? Math.ceil(this.leaseMs / 1000)) * 1000;
        const mine = spec.holderIdentity === identity;
        if (mine || !spec.holderIdentity || renewed + duration < now) {
          lease.spec = {
            ...spec,
            holderIdentity: identity,
            leaseDurationSeconds: Math.ceil(this.leaseMs / 1000),
            renewTime: stamp,
            ...(mine ? {} : { acquireTime: stamp, leaseTransitions: (spec.leaseTransitions ?? 0) + 1 }),
          };
          await this.api.replaceNamespacedLease({ name, namespace, body: lease });
          this.setLeading(true);
        } else {
          this.setLeading(false);
        }
      }
    } catch (e) {
      // 409: another replica won the race. Anything else: we cannot prove we still lead.
      if (statusOf(e) !== 409) this.opts.log.warn({ err: (e as Error).message }, 'leader election: lease update failed');
      this.setLeading(false);
    }
    this.schedule();
  }

  /** Steps down: the lease is released so another replica takes over at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.leading) {
      try {
        const lease = await this.api.readNamespacedLease({ name: this.opts.name, namespace: this.opts.namespace });
        if (lease.spec?.holderIdentity === this.opts.identity) {
          lease.spec.holderIdentity = undefined;
          lease.spec.renewTime = new Date(0);
          await this.api.replaceNamespacedLease({ name: this.opts.name, namespace: this.opts.namespace, body: lease });
        }
      } catch {
        // the lease expires by itself
      }
      this.setLeading(false);
    }
  }
}
