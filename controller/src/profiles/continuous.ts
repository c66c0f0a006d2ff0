/**
 * Continuous mode: every `interval`, Go pods older than `minAge` get a short, low-rate capture
 * (defaults 10 s at 19 Hz every 10 min), kept in the store like any profile (mode
 * `continuous`), so two of them can be compared with `?base=<id>`. Go pods are recognised
 * without labels: a pod qualifies once one of its captures found a Go process, and pods never
 * profiled get one probe capture. Only the leader schedules; captures go one node at a time.
 */
import type { Logger } from '#common/log.js';

import type { FleetRegistry } from '../fleet/registry.ts';
import type { ProfileService } from './service.ts';
import type { ProfileStore } from './store.ts';

export interface ContinuousOptions {
  service: Pick<ProfileService, 'capture'>;
  store: ProfileStore;
  registry: FleetRegistry;
  log: Logger;
  intervalMs: number;
  seconds: number;
  hz: number;
  /** Pods younger than this are left alone (start-up is not steady state). */
  minAgeMs: number;
  isLeader: () => boolean;
  /** Start time of a pod (from the API server); default: first seen in a report by this scheduler. */
  podStartedAt?: (namespace: string, pod: string) => Promise<number | undefined>;
  clock?: () => number;
}

interface Candidate {
  namespace: string;
  pod: string;
}

export class ContinuousProfiler {
  private timer: NodeJS.Timeout | undefined;
  private readonly firstSeen = new Map<string, number>();
  /** Pods whose last capture found no Go process: not profiled again. */
  private readonly notGo = new Set<string>();
  private running: Promise<void> | undefined;

  constructor(private readonly opts: ContinuousOptions) {}

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.opts.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }

  private now(): number {
    return (this.opts.clock ?? Date.now)();
  }

  /** Pods old enough, not known to be non-Go. */
  async candidates(): Promise<Candidate[]> {
    const out: Candidate[] = [];
    const now = this.now();
    for (const node of this.opts.registry.entries()) {
      if (!node.connected) continue;
      for (const p of node.report?.pods ?? []) {
        if (!p.namespace || !p.name) continue;
        const key = `${p.namespace}/${p.name}`;
        if (this.notGo.has(key)) continue;
        if (!this.firstSeen.has(key)) this.firstSeen.set(key, now);
        const started = (await this.opts.podStartedAt?.(p.namespace, p.name)) ?? this.firstSeen.get(key)!;
        if (now - started >= this.opts.minAgeMs) out.push({ namespace: p.namespace, pod: p.name });
      }
    }
    return out;
  }

  /** One round: capture each candidate in turn. Returns the ids stored. */
  tick(): Promise<void> {
    if (this.running || !this.opts.isLeader()) return this.running ?? Promise.resolve();
    this.running = this.round().finally(() => (this.running = undefined));
    return this.running;
  }

  private async round(): Promise<void> {
    for (const c of await this.candidates()) {
      const key = `${c.namespace}/${c.pod}`;
      try {
        const p = await this.opts.service.capture(
          { namespace: c.namespace, pod: c.pod, container: '', seconds: this.opts.seconds, hz: this.opts.hz, pid: 0, node: '' },
          undefined,
          'continuous',
        );
        if (!p.data.processes.some((x) => x.isGo)) this.notGo.add(key);
      } catch (e) {
        this.opts.log.warn({ pod: key, err: (e as Error).message }, 'continuous profile failed');
      }
    }
  }
}
