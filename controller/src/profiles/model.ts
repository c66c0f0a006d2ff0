/**
 * A profile as the controller keeps it: what the agent measured (deduplicated frames and
 * leaf-first samples, as on the fleet link) plus who asked for what. Every output format is
 * rendered from this one shape.
 */
import type { ICommandResult } from '#proto/codec.js';

export interface ProfileFrame {
  function: string;
  file: string;
  line: number;
  inlined: boolean;
  /** go, native, kernel, unknown */
  kind: string;
  address: number;
  mapping: string;
}

export interface ProfileSample {
  /** Indexes into frames, leaf first. */
  frames: number[];
  count: number;
  pid: number;
}

export interface ProfileProcess {
  pid: number;
  exe: string;
  isGo: boolean;
  goVersion: string;
  modulePath: string;
  stripped: boolean;
  container: string;
}

export interface ProfileData {
  frames: ProfileFrame[];
  samples: ProfileSample[];
  processes: ProfileProcess[];
  hz: number;
  startedUnixMs: number;
  durationMs: number;
  warnings: string[];
}

export interface ProfileTarget {
  node: string;
  namespace: string;
  pod: string;
  podUid: string;
  container: string;
  /** Local mode: one process. */
  pid?: number;
}

export interface StoredProfile {
  id: string;
  createdAt: string;
  /** Who asked (username), or `continuous` for scheduled captures. */
  requestedBy: string;
  mode: 'on-demand' | 'continuous';
  target: ProfileTarget;
  seconds: number;
  hz: number;
  data: ProfileData;
}

type WireResult = NonNullable<ICommandResult['profile']>;

const num = (v: unknown): number => (typeof v === 'number' ? v : v === undefined || v === null ? 0 : Number(v));

/** The fleet link's ProfileResult (protobuf defaults may be missing) as plain data. */
export function fromWire(r: WireResult): ProfileData {
  return {
    frames: (r.frames ?? []).map((f) => ({
      function: f.function ?? '',
      file: f.file ?? '',
      line: f.line ?? 0,
      inlined: f.inlined ?? false,
      kind: f.kind ?? 'unknown',
      address: num(f.address),
      mapping: f.mapping ?? '',
    })),
    samples: (r.samples ?? []).map((s) => ({ frames: [...(s.frames ?? [])], count: num(s.count), pid: s.pid ?? 0 })),
    processes: (r.processes ?? []).map((p) => ({
      pid: p.pid ?? 0,
      exe: p.exe ?? '',
      isGo: p.isGo ?? false,
      goVersion: p.goVersion ?? '',
      modulePath: p.modulePath ?? '',
      stripped: p.stripped ?? false,
      container: p.container ?? '',
    })),
    hz: r.hz ?? 0,
    startedUnixMs: num(r.startedUnixMs),
    durationMs: num(r.durationMs),
    warnings: [...(r.warnings ?? [])],
  };
}

/** Name of a frame in flamegraphs and folded stacks (flamegraph.pl marks kernel frames `_[k]`). */
export function frameName(f: ProfileFrame): string {
  const name = f.function.replace(/;/g, ':').replace(/\s+/g, '_');
  return f.kind === 'kernel' ? `${name}_[k]` : name;
}

function processName(data: ProfileData, pid: number): string {
  const p = data.processes.find((x) => x.pid === pid);
  const exe = p?.exe ?? '';
  const base = exe.slice(exe.lastIndexOf('/') + 1) || `pid`;
  return `${base.replace(/[;\s]/g, '_')} (${pid})`;
}

export interface WeightedStack {
  /** Root first; the process is the root frame. */
  names: string[];
  count: number;
}

/** Root-first stacks with the process as the root frame (several processes per container). */
export function rootFirstStacks(data: ProfileData): WeightedStack[] {
  return data.samples.map((s) => ({
    names: [processName(data, s.pid), ...s.frames.map((i) => frameName(data.frames[i]!)).reverse()],
    count: s.count,
  }));
}

export function totalSamples(data: ProfileData): number {
  return data.samples.reduce((a, s) => a + s.count, 0);
}
