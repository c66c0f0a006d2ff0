/**
 * A generated, seeded day of a cluster for the scheduling simulator: workloads with a
 * diurnal usage shape (quiet, diurnal, noisy, spiky, and night-time batch jobs), and the
 * pods they create and delete over the day — scale-ups in bursts (one tick, so herding is
 * possible), scale-downs newest first, and replacements when a pod reaches the end of its
 * life (rollouts, restarts). Everything follows from the seed; usage is a pure function of
 * (workload, pod, time), so every scorer sees exactly the same demand.
 */
import type { Resources } from '../score.ts';

export type WorkloadKind = 'quiet' | 'diurnal' | 'noisy' | 'spiky' | 'batch';

export interface WorkloadSpec {
  name: string;
  kind: WorkloadKind;
  requests: Resources;
  /** The workload's `worst` bad-neighbour score (0..100), as the neighbours module would rank it. */
  neighbourWorst: number;
  /** Hours by which its daily curve is shifted from the cluster's. */
  phaseHours: number;
}

export interface PodSpec {
  id: number;
  workload: number;
  /** Seconds since 00:00 when the pod is created (enters the scheduling queue). */
  arriveAt: number;
  /** Seconds since 00:00 when it is deleted (or the end of the day). */
  leaveAt: number;
}

export interface Day {
  seed: number;
  workloads: WorkloadSpec[];
  pods: PodSpec[];
}

export interface DayOptions {
  seed: number;
  /** Roughly how many pods run at the daily peak. */
  peakPods: number;
  /** Mean life of a pod before it is replaced (rollout, restart), in minutes. */
  podLifeMinutes?: number;
}

export const DAY_SECONDS = 86_400;
const MiB = 2 ** 20;
const GiB = 2 ** 30;

/** mulberry32: small, fast, good enough for a simulation, and the same on every machine. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A deterministic number in [0, 1) from integers (for per-pod, per-minute noise and spikes). */
export function hash01(a: number, b: number, c = 0): number {
  let h = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(b + 0x7f4a7c15, 0xc2b2ae35) ^ Math.imul(c + 0x165667b1, 0x27d4eb2f);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return ((h ^ (h >>> 16)) >>> 0) / 4294967296;
}

/** The cluster's daily curve, 0 at 04:00 and 1 at 16:00. */
export function diurnal(seconds: number, phaseHours = 0): number {
  const h = seconds / 3600 - phaseHours;
  return 0.5 - 0.5 * Math.cos((2 * Math.PI * (h - 4)) / 24);
}

const SIZES: Array<{ p: number; r: Resources }> = [
  { p: 0.35, r: { cpuMillis: 250, memoryBytes: 512 * MiB } },
  { p: 0.3, r: { cpuMillis: 500, memoryBytes: 1 * GiB } },
  { p: 0.2, r: { cpuMillis: 1000, memoryBytes: 2 * GiB } },
  { p: 0.1, r: { cpuMillis: 2000, memoryBytes: 6 * GiB } },
  { p: 0.05, r: { cpuMillis: 3500, memoryBytes: 10 * GiB } },
];
const KINDS: Array<{ p: number; kind: WorkloadKind; worst: [number, number] }> = [
  { p: 0.3, kind: 'quiet', worst: [2, 25] },
  { p: 0.35, kind: 'diurnal', worst: [20, 60] },
  { p: 0.1, kind: 'noisy', worst: [82, 100] },
  { p: 0.1, kind: 'spiky', worst: [70, 92] },
  { p: 0.15, kind: 'batch', worst: [45, 75] },
];

function pick<T extends { p: number }>(items: T[], u: number): T {
  let acc = 0;
  for (const it of items) if (u < (acc += it.p)) return it;
  return items[items.length - 1]!;
}

export function generateWorkloads(seed: number, count: number): WorkloadSpec[] {
  const r = rng(seed);
  return Array.from({ length: count }, (_, i) => {
    const k = pick(KINDS, r());
    const size = pick(SIZES, r()).r;
    return {
      name: `${k.kind}-${i}`,
      kind: k.kind,
      requests: size,
      neighbourWorst: Math.round(k.worst[0] + r() * (k.worst[1] - k.worst[0])),
      phaseHours: (r() - 0.5) * 3,
    };
  });
}

/**
 * Real CPU use of a pod (millicores) at a time: a fraction of its request that follows the
 * kind's shape. Noisy pods go well above their request at peak; spiky ones burst to 2.5×
 * for a few minutes at a time.
 */
export function podCpu(w: WorkloadSpec, podId: number, seconds: number): number {
  const d = diurnal(seconds, w.phaseHours);
  const minute = Math.floor(seconds / 60);
  const jitter = 0.9 + 0.2 * hash01(podId, minute, 1);
  const req = w.requests.cpuMillis;
  switch (w.kind) {
    case 'quiet':
      return req * (0.1 + 0.15 * d) * jitter;
    case 'diurnal':
      return req * (0.1 + 0.5 * d) * jitter;
    case 'noisy':
      return req * (0.3 + 1.5 * d) * jitter;
    case 'spiky': {
      // A spike starts in ~3 % of 3-minute slots and lasts the slot.
      const spiking = hash01(podId, Math.floor(minute / 3), 2) < 0.03;
      return req * (spiking ? 2.5 : 0.15 + 0.2 * d) * jitter;
    }
    case 'batch':
      return req * 0.8 * jitter;
  }
}

/** Real memory use of a pod (bytes): steadier than CPU, noisy pods closer to their request. */
export function podMemory(w: WorkloadSpec, seconds: number): number {
  const d = diurnal(seconds, w.phaseHours);
  const f = w.kind === 'noisy' ? 0.7 + 0.35 * d : w.kind === 'batch' ? 0.8 : 0.45 + 0.3 * d;
  return w.requests.memoryBytes * f;
}

/** Replicas a service workload wants at a time, from its own min/max over the day's curve. */
function replicasAt(w: WorkloadSpec, min: number, max: number, seconds: number): number {
  if (w.kind === 'quiet') return min;
  return Math.round(min + (max - min) * diurnal(seconds, w.phaseHours));
}

interface Alive {
  id: number;
  arriveAt: number;
  endOfLife: number;
}

/** Pods of one service workload over the day, stepping every 5 minutes. */
function servicePods(w: WorkloadSpec, wi: number, min: number, max: number, r: () => number, next: () => number, lifeS: number): PodSpec[] {
  const out: PodSpec[] = [];
  const alive: Alive[] = [];
  const life = () => -Math.log(1 - r()) * lifeS;
  const start = (t: number) => {
    const arriveAt = t + Math.floor(r() * (t === 0 ? 300 : 20));
    alive.push({ id: next(), arriveAt, endOfLife: arriveAt + life() });
  };
  const stop = (a: Alive, t: number) => out.push({ id: a.id, workload: wi, arriveAt: a.arriveAt, leaveAt: Math.max(t, a.arriveAt + 60) });
  for (let t = 0; t < DAY_SECONDS; t += 300) {
    for (let i = alive.length - 1; i >= 0; i--) {
      if (alive[i]!.endOfLife > t) continue;
      stop(alive.splice(i, 1)[0]!, t);
      start(t);
    }
    const want = replicasAt(w, min, max, t);
    while (alive.length < want) start(t);
    while (alive.length > want) stop(alive.pop()!, t); // newest first
  }
  for (const a of alive) out.push({ id: a.id, workload: wi, arriveAt: a.arriveAt, leaveAt: DAY_SECONDS });
  return out;
}

/** Night-time batch jobs of one batch workload: a few waves of pods that run 30–120 minutes. */
function batchPods(wi: number, r: () => number, next: () => number, width: number): PodSpec[] {
  const out: PodSpec[] = [];
  const waves = 2 + Math.floor(r() * 3);
  for (let k = 0; k < waves; k++) {
    const hour = r() < 0.75 ? 20 + r() * 8 : r() * 24; // mostly 20:00–04:00
    const at = Math.floor(((hour % 24) * 3600) / 60) * 60;
    const dur = 1800 + Math.floor(r() * 5400);
    const n = 1 + Math.floor(r() * width);
    for (let i = 0; i < n; i++) out.push({ id: next(), workload: wi, arriveAt: at, leaveAt: Math.min(DAY_SECONDS, at + dur) });
  }
  return out;
}

/** The day: workloads sized so that about `peakPods` pods run at the peak. */
export function generateDay(opts: DayOptions): Day {
  const workloadCount = Math.max(8, Math.round(opts.peakPods / 6));
  const workloads = generateWorkloads(opts.seed, workloadCount);
  const r = rng(opts.seed ^ 0x5eed);
  let id = 0;
  const next = () => id++;
  const lifeS = (opts.podLifeMinutes ?? 360) * 60;
  const pods: PodSpec[] = [];
  workloads.forEach((w, wi) => {
    if (w.kind === 'batch') {
      pods.push(...batchPods(wi, r, next, 8));
      return;
    }
    const max = 2 + Math.floor(r() * 10);
    const min = Math.max(1, Math.round(max * (0.2 + 0.3 * r())));
    pods.push(...servicePods(w, wi, min, max, r, next, lifeS));
  });
  pods.sort((a, b) => a.arriveAt - b.arriveAt || a.id - b.id);
  return { seed: opts.seed, workloads, pods };
}
