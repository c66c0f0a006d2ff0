/**
 * Peak and off-peak ("seasons"): an hour-of-week profile of usage, each hour classified as
 * peak or off-peak, and the brainset (parameter set) each season uses. Hours are UTC;
 * hour-of-week 0 is Sunday 00:00 (PromQL's day_of_week() × 24 + hour()).
 */

export type Season = 'peak' | 'off-peak';

/** What the current time is; tests inject a fixed one. */
export interface Clock {
  now(): number;
}
export const systemClock: Clock = { now: () => Date.now() };

export function hourOfWeek(ms: number): number {
  const d = new Date(ms);
  return d.getUTCDay() * 24 + d.getUTCHours();
}

/** Average of the points that fall in each hour of week; null where there is no data. */
export function hourOfWeekProfile(points: ReadonlyArray<readonly [number, number]>): Array<number | null> {
  const sum = new Array<number>(168).fill(0);
  const n = new Array<number>(168).fill(0);
  for (const [t, v] of points) {
    if (!Number.isFinite(v)) continue;
    const h = hourOfWeek(t * 1000);
    sum[h]! += v;
    n[h]!++;
  }
  return sum.map((s, h) => (n[h]! > 0 ? s / n[h]! : null));
}

export interface SeasonSchedule {
  /** Per hour of week: its season. Hours without data are peak (the safe side). */
  hours: Season[];
  profile: Array<number | null>;
  /** Usage at or above this is peak: min + peakThreshold × (max − min) of the profile. */
  threshold: number | null;
  peakHours: number[];
  offPeakHours: number[];
}

export function classifyHours(profile: Array<number | null>, peakThreshold: number): SeasonSchedule {
  const known = profile.filter((v): v is number => v !== null);
  const threshold = known.length === 0 ? null : Math.min(...known) + peakThreshold * (Math.max(...known) - Math.min(...known));
  const hours = profile.map((v): Season => (v === null || threshold === null || v >= threshold ? 'peak' : 'off-peak'));
  return {
    hours,
    profile,
    threshold,
    peakHours: hours.flatMap((s, h) => (s === 'peak' ? [h] : [])),
    offPeakHours: hours.flatMap((s, h) => (s === 'off-peak' ? [h] : [])),
  };
}

/** Consecutive hours of one season as readable ranges: "Mon 08:00–20:00". */
export function describeSchedule(schedule: SeasonSchedule): Array<{ season: Season; from: string; to: string; hours: number }> {
  const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
  const label = (h: number) => `${DAYS[Math.floor(h / 24) % 7]} ${String(h % 24).padStart(2, '0')}:00`;
  const out: Array<{ season: Season; from: string; to: string; hours: number }> = [];
  let start = 0;
  for (let h = 1; h <= 168; h++) {
    if (h === 168 || schedule.hours[h] !== schedule.hours[start]) {
      out.push({ season: schedule.hours[start]!, from: label(start), to: label(h % 168), hours: h - start });
      start = h;
    }
  }
  return out;
}

/** The parameters one season recommends with (the seed's "brainset"). */
export interface Brainset {
  season: Season;
  /** CPU request = this quantile of the season's CPU usage … */
  cpuPercentile: number;
  /** … × (1 + cpuMargin). */
  cpuMargin: number;
  /** Memory request = max working set over the whole window × (1 + memoryMargin). */
  memoryMargin: number;
}

export interface BrainsetConfig {
  peakCpuPercentile: number;
  peakCpuMargin: number;
  offPeakCpuPercentile: number;
  offPeakCpuMargin: number;
  memoryMargin: number;
}

export function brainsets(c: BrainsetConfig): Record<Season, Brainset> {
  return {
    peak: { season: 'peak', cpuPercentile: c.peakCpuPercentile, cpuMargin: c.peakCpuMargin, memoryMargin: c.memoryMargin },
    'off-peak': { season: 'off-peak', cpuPercentile: c.offPeakCpuPercentile, cpuMargin: c.offPeakCpuMargin, memoryMargin: c.memoryMargin },
  };
}

export function seasonAt(schedule: SeasonSchedule | undefined, ms: number): Season {
  return schedule?.hours[hourOfWeek(ms)] ?? 'peak';
}
