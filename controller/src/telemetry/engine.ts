/**
 * The recommendation engine: pure formulas from statistics to requests (and limits). The
 * README section "Telemetry and right-sizing" states them; keep the two in step.
 *
 *   cpu request    = max(minCpu, Q_season(cpu) × (1 + cpuMargin))
 *   memory request = max(minMemory, max working set × (1 + memoryMargin), OOM floor)
 *   OOM floor      = max(max working set, current memory limit) × (1 + oomMargin), if OOM-killed
 *   confidence     = min(1, history / confidenceHistory)
 */
import type { Brainset, Season } from './seasons.ts';
import type { Stats } from './statistics.ts';

export type LimitsPolicy = 'keep-ratio' | 'none' | 'from-max';

export interface EngineParams {
  /** Cores. */
  minCpu: number;
  /** Bytes. */
  minMemory: number;
  oomMargin: number;
  limitsPolicy: LimitsPolicy;
  /** History (seconds) at which confidence reaches 1. */
  confidenceSeconds: number;
}

export interface Resources {
  cpu?: number;
  memory?: number;
}

export interface EngineRecommendation {
  season: Season;
  requests: { cpu: number; memory: number };
  /** Limits under the policy; undefined = no limit for that resource. */
  limits: Resources;
  confidence: number;
  /** How each value was reached, for people. */
  basis: { cpu: string; memory: string };
}

export function recommend(
  stats: Stats,
  brainset: Brainset,
  params: EngineParams,
  current: { requests: Resources; limits: Resources } = { requests: {}, limits: {} },
): EngineRecommendation {
  const q = stats.seasonCpu[brainset.season];
  const quantile = q ?? stats.cpu.p95;
  const pct = `p${Math.round(brainset.cpuPercentile * 100)}`;
  const cpuRaw = quantile * (1 + brainset.cpuMargin);
  const cpu = Math.max(params.minCpu, cpuRaw);
  const cpuBasis =
    cpu === cpuRaw ? `${q === undefined ? 'p95 (no usage in this season)' : `${brainset.season} ${pct}`} × ${1 + brainset.cpuMargin}` : 'minimum';

  const fromMax = stats.memory.max * (1 + brainset.memoryMargin);
  const oomFloor = stats.oomKilled ? Math.max(stats.memory.max, current.limits.memory ?? 0) * (1 + params.oomMargin) : 0;
  const memory = Math.max(params.minMemory, fromMax, oomFloor);
  const memBasis =
    memory === oomFloor && oomFloor > 0
      ? `OOM floor × ${1 + params.oomMargin}`
      : memory === fromMax
        ? `max working set × ${1 + brainset.memoryMargin}`
        : 'minimum';

  const limits: Resources = {};
  const requests = { cpu, memory };
  for (const r of ['cpu', 'memory'] as const) {
    if (params.limitsPolicy === 'none') continue;
    if (params.limitsPolicy === 'from-max') {
      const max = r === 'cpu' ? stats.cpu.max * (1 + brainset.cpuMargin) : stats.memory.max * (1 + brainset.memoryMargin + params.oomMargin);
      limits[r] = Math.max(requests[r], max);
      continue;
    }
    const l = current.limits[r];
    if (l === undefined) continue; // no limit stays no limit
    const req = current.requests[r] ?? l; // the apiserver defaults requests to limits
    limits[r] = req > 0 ? requests[r] * (l / req) : l;
  }
  return {
    season: brainset.season,
    requests,
    limits,
    confidence: Math.min(1, stats.historySeconds / params.confidenceSeconds),
    basis: { cpu: cpuBasis, memory: memBasis },
  };
}
