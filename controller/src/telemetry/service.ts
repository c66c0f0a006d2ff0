/**
 * Telemetry in the controller: statistics and recommendations refreshed in the background
 * and kept in memory, so admission answers from the cache and never waits on Prometheus.
 * A failed refresh marks the cache unusable (admission then leaves resources alone and says
 * why) until the next refresh succeeds. The season is read from an injectable clock; a
 * change of season is announced to listeners (the resize ladder).
 */
import { ErrorCodes, isNemuError, NemuError } from '#common/errors.js';
import type { Logger } from '#common/log.js';

import type { ControllerConfig } from '../config.ts';
import { ControllerErrorCodes } from '../errors.ts';
import { parseQuantity } from '../mutators/quantity.ts';
import { type EngineParams, type EngineRecommendation, recommend, type Resources } from './engine.ts';
import { PrometheusClient } from './prometheus.ts';
import type { QueryWindow } from './queries.ts';
import { type Brainset, brainsets, classifyHours, type Clock, describeSchedule, hourOfWeekProfile, type Season, seasonAt, systemClock } from './seasons.ts';
import { collectSnapshot, deploymentOfReplicaSet, type OwnerLookup, type Snapshot, workloadKey, type WorkloadRef, type WorkloadStats } from './statistics.ts';

export interface TelemetrySettings {
  window: QueryWindow;
  brainsets: Record<Season, Brainset>;
  engine: EngineParams;
  peakThreshold: number;
  minConfidence: number;
  refreshMs: number;
  timeoutMs: number;
}

export function telemetrySettings(c: ControllerConfig): TelemetrySettings {
  return {
    window: {
      windowSeconds: Math.round(c.telemetryWindow / 1000),
      stepSeconds: Math.round(c.telemetryStep / 1000),
      rateSeconds: Math.round(c.telemetryRateWindow / 1000),
      recorded: c.prometheusRecordingRules,
    },
    brainsets: brainsets(c),
    engine: {
      minCpu: parseQuantity(c.minCpu) ?? 0.01,
      minMemory: parseQuantity(c.minMemory) ?? 32 * 2 ** 20,
      oomMargin: c.oomMargin,
      limitsPolicy: c.limitsPolicy,
      confidenceSeconds: Math.round(c.confidenceHistory / 1000),
    },
    peakThreshold: c.peakThreshold,
    minConfidence: c.minConfidence,
    refreshMs: c.telemetryRefresh,
    timeoutMs: c.prometheusTimeout,
  };
}

export type RecommendationAnswer = { workload: WorkloadStats; recommendation: EngineRecommendation } | { reason: string };

export class Telemetry {
  snapshot: Snapshot | undefined;
  lastError: NemuError | undefined;
  lastRefresh: { at: string; ok: boolean; durationMs: number; queries: number } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private refreshing: Promise<Snapshot | undefined> | undefined;
  private index = new Map<string, WorkloadStats>();
  private season: Season | undefined;
  private readonly flipListeners: Array<(season: Season, previous: Season) => void> = [];
  /** The Deployment of a ReplicaSet, when the cluster model knows it (names alone otherwise). */
  replicaSetOwner: ((namespace: string, replicaSet: string) => { kind: string; name: string } | undefined) | undefined;

  constructor(
    readonly prom: PrometheusClient,
    readonly settings: TelemetrySettings,
    private readonly log: Logger,
    readonly clock: Clock = systemClock,
    /** The cluster model's owners; may still be loading (awaited only when a refresh needs it). */
    private readonly owners?: OwnerLookup | Promise<OwnerLookup | undefined>,
  ) {}

  /** One refresh; concurrent callers share it. Never throws: the error is kept in lastError. */
  refresh(): Promise<Snapshot | undefined> {
    this.refreshing ??= this.doRefresh().finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  private async doRefresh(): Promise<Snapshot | undefined> {
    const started = Date.now();
    const before = this.prom.queries;
    try {
      const at = Math.floor(this.clock.now() / 1000);
      const snap = await collectSnapshot(this.prom, {
        window: this.settings.window,
        at,
        brainsets: this.settings.brainsets,
        peakThreshold: this.settings.peakThreshold,
        ...(this.owners ? { owners: this.owners } : {}),
      });
      this.snapshot = snap;
      this.index = new Map(snap.workloads.map((w) => [workloadKey(w.workload, w.container), w]));
      this.lastError = undefined;
      this.lastRefresh = { at: new Date().toISOString(), ok: true, durationMs: snap.durationMs, queries: snap.queries };
      this.log.debug(
        { workloads: snap.workloads.length, containers: snap.containers.length, queries: snap.queries, ms: snap.durationMs },
        'telemetry refreshed',
      );
      this.checkSeason();
      return snap;
    } catch (e) {
      this.lastError = isNemuError(e) ? e : new NemuError(ControllerErrorCodes.PROMETHEUS, `telemetry refresh failed: ${(e as Error).message}`, { cause: e });
      this.lastRefresh = { at: new Date().toISOString(), ok: false, durationMs: Date.now() - started, queries: this.prom.queries - before };
      this.log.warn({ err: this.lastError.message }, 'telemetry refresh failed; admission leaves resources unchanged until Prometheus answers again');
      return undefined;
    }
  }

  start(): void {
    if (this.timer) return;
    void this.refresh();
    this.timer = setInterval(() => {
      void this.refresh();
      this.checkSeason();
    }, this.settings.refreshMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  currentSeason(): Season {
    return seasonAt(this.snapshot?.schedule, this.clock.now());
  }

  onSeasonFlip(listener: (season: Season, previous: Season) => void): void {
    this.flipListeners.push(listener);
  }

  /** Announces a season change (called after each refresh and tick; tests call it after moving the clock). */
  checkSeason(): Season {
    const now = this.currentSeason();
    const previous = this.season;
    this.season = now;
    if (previous !== undefined && previous !== now) for (const l of this.flipListeners) l(now, previous);
    return now;
  }

  /** Statistics of a workload's container; a ReplicaSet owner is followed to its Deployment. */
  workloadStats(namespace: string, owner: { kind: string; name: string } | undefined, container: string): WorkloadStats | undefined {
    if (!owner) return undefined;
    const direct = this.index.get(workloadKey({ namespace, kind: owner.kind, name: owner.name }, container));
    if (direct) return direct;
    if (owner.kind === 'ReplicaSet') {
      const up = this.replicaSetOwner?.(namespace, owner.name);
      if (up) return this.index.get(workloadKey({ namespace, kind: up.kind, name: up.name }, container));
      const d = deploymentOfReplicaSet(owner.name);
      if (d) return this.index.get(workloadKey({ namespace, kind: 'Deployment', name: d }, container));
    }
    return undefined;
  }

  /** The cached recommendation for the current (or given) season, or why there is none. */
  recommendation(
    namespace: string,
    owner: WorkloadRef | { kind: string; name: string } | undefined,
    container: string,
    current: { requests: Resources; limits: Resources },
    season: Season = this.currentSeason(),
  ): RecommendationAnswer {
    if (this.lastError) return { reason: `${this.lastError.code}: ${this.lastError.message}` };
    if (!this.snapshot) return { reason: 'no telemetry yet (the first refresh has not finished)' };
    const stats = this.workloadStats(namespace, owner, container);
    if (!stats)
      return { reason: `no usage history for ${owner ? `${owner.kind} ${namespace}/${owner.name}` : `an unowned pod in ${namespace}`} container ${container}` };
    const rec = recommend(stats, this.settings.brainsets[season], this.settings.engine, current);
    if (rec.confidence < this.settings.minConfidence)
      return {
        reason: `only ${(stats.historySeconds / 3600).toFixed(1)} h of history (confidence ${rec.confidence.toFixed(2)} < minConfidence ${this.settings.minConfidence})`,
      };
    return { workload: stats, recommendation: rec };
  }

  /**
   * The hour-of-week profile of one workload (one range query over its pods, on demand),
   * classified with the same threshold rule as the cluster's.
   */
  async workloadProfile(
    ref: WorkloadRef,
  ): Promise<{ workload: WorkloadRef; pods: number; profile: Array<number | null>; peakHours: number[]; offPeakHours: number[] }> {
    const snap = this.snapshot;
    if (!snap) throw this.lastError ?? new NemuError(ControllerErrorCodes.PROMETHEUS, 'no telemetry yet; the first refresh is running', { status: 503 });
    const owners = snap.owners ?? (() => undefined);
    const pods = [
      ...new Set(
        snap.containers
          .filter(
            (c) =>
              c.namespace === ref.namespace &&
              (owners(c.namespace, c.pod) ?? { kind: 'Pod', name: c.pod }).name === ref.name &&
              (owners(c.namespace, c.pod)?.kind ?? 'Pod') === ref.kind,
          )
          .map((c) => c.pod),
      ),
    ];
    if (pods.length === 0)
      throw new NemuError(ErrorCodes.NOT_FOUND, `no usage history for ${ref.kind} ${ref.namespace}/${ref.name}; GET /api/v1/telemetry lists the workloads`, {
        status: 404,
      });
    const w = this.settings.window;
    const esc = (s: string) => s.replace(/\./g, '[.]'); // pod names are DNS names: [a-z0-9.-]
    const step = Math.max(w.stepSeconds, Math.ceil(w.windowSeconds / 10_000));
    const expr = `sum(rate(container_cpu_usage_seconds_total{namespace="${ref.namespace}", pod=~"${pods.map(esc).join('|')}", container!="", container!="POD"}[${w.rateSeconds}s]))`;
    const series = await this.prom.queryRange(expr, snap.at - w.windowSeconds, snap.at, step);
    const schedule = classifyHours(hourOfWeekProfile(series[0]?.points ?? []), this.settings.peakThreshold);
    return { workload: ref, pods: pods.length, profile: schedule.profile, peakHours: schedule.peakHours, offPeakHours: schedule.offPeakHours };
  }

  /** GET /api/v1/seasons. */
  seasons(): unknown {
    const s = this.snapshot?.schedule;
    return {
      now: new Date(this.clock.now()).toISOString(),
      season: this.currentSeason(),
      timezone: 'UTC',
      brainsets: this.settings.brainsets,
      schedule: s ? describeSchedule(s) : [],
      peakHours: s?.peakHours ?? [],
      offPeakHours: s?.offPeakHours ?? [],
      threshold: s?.threshold ?? null,
      profile: s?.profile ?? [],
      lastRefresh: this.lastRefresh ?? null,
      ...(this.lastError ? { error: this.lastError.toJSON() } : {}),
    };
  }
}
