/**
 * One capture, end to end: check limits and the node (preflight), resolve the target to
 * cgroup directories (or a pid), run bpftrace while snapshotting every process that appears in
 * the target (maps and binaries must be read while the processes run), then symbolize.
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';

import { ErrorCodes, NemuError } from '#common/errors.js';

import type { CgroupVersionOption } from '../cgroups/hierarchy.ts';
import { buildScript, checkLimits, mapKeysFor, parseBpftraceOutput, type ParsedOutput, runBpftrace, type SampleFilter } from './bpftrace.ts';
import { bpftraceMissing, diagnoseRun, preflight } from './diagnose.ts';
import { BinaryCache, type ProcessSnapshot, snapshotProcess, type SymbolizedProfile, symbolizeStacks } from './symbolize.ts';
import { type ContainerNames, containerOfPid, pidsIn, resolvePod } from './target.ts';

export type CaptureTarget = { podUid: string; container?: string } | { pid: number };

export interface CaptureRequest {
  target: CaptureTarget;
  seconds: number;
  hz: number;
}

export interface CaptureOptions {
  bpftracePath: string;
  cgroupRoot: string;
  cgroupVersion?: CgroupVersionOption;
  procRoot?: string;
  names?: ContainerNames;
  cache?: BinaryCache;
  signal?: AbortSignal;
  maxOutputBytes?: number;
  /** How often the target's process list is re-read during the capture. */
  pollMs?: number;
  /** Progress notes (sampling started, symbolizing). */
  onProgress?: (what: string) => void;
}

export interface CaptureResult extends SymbolizedProfile {
  hz: number;
  startedUnixMs: number;
  durationMs: number;
  /** When bpftrace ended (the window closed and the map was printed). */
  endedUnixMs: number;
  /** From the end of bpftrace to the symbolized profile. */
  symbolizeMs: number;
}

export async function capture(req: CaptureRequest, opts: CaptureOptions): Promise<CaptureResult> {
  checkLimits(req.seconds, req.hz);
  const pf = preflight({ bpftracePath: opts.bpftracePath, ...(opts.procRoot ? { procRoot: opts.procRoot } : {}) });
  const procRoot = opts.procRoot ?? '/proc';
  const target = await resolveTarget(req.target, opts, procRoot);
  // Built before the watcher starts, so a refused script leaves no poller behind.
  const script = buildScript({ filter: target.filter, hz: req.hz, seconds: req.seconds });
  const watcher = await watchProcesses(target, procRoot, opts.cache ?? new BinaryCache(), opts.pollMs ?? 250);
  let sampled: Sampled;
  try {
    sampled = await sample(req, opts, pf.bpftrace, script);
  } finally {
    watcher.stop();
  }
  const processes = await watcher.settled();
  const { run, startedUnixMs } = sampled;
  const parsed = parseBpftraceOutput(run.stdout);
  const failure = diagnoseRun(run, sampled.attached || parsed.attached);
  if (failure) throw failure;

  opts.onProgress?.('symbolizing');
  const t0 = Date.now();
  const profile = symbolizeStacks(parsed.stacks, processes, parsed.comms);
  const warnings = [...pf.warnings];
  if (parsed.stacks.length === 0) {
    warnings.push(`no samples: the target used no CPU during the ${req.seconds} s window (idle, or it exited)`);
  }
  const lost = lostSamples(parsed);
  if (lost) warnings.push(lost);
  return {
    ...profile,
    warnings: [...warnings, ...profile.warnings],
    hz: req.hz,
    startedUnixMs,
    durationMs: run.endedAt - startedUnixMs,
    endedUnixMs: run.endedAt,
    symbolizeMs: Date.now() - t0,
  };
}

/** What bpftrace samples, and how to list the target's processes while it does. */
interface ResolvedTarget {
  filter: SampleFilter;
  listPids: () => Promise<number[]>;
  /** A pod's container cgroup directories and their names; empty for a pid target. */
  labels: Map<string, string>;
}

async function resolveTarget(target: CaptureTarget, opts: CaptureOptions, procRoot: string): Promise<ResolvedTarget> {
  if ('pid' in target) {
    const pid = target.pid;
    if (!Number.isInteger(pid) || pid <= 0 || !existsSync(join(procRoot, String(pid)))) {
      throw new NemuError(ErrorCodes.PROFILER_TARGET, `no process ${pid} on this node`, { status: 404 });
    }
    return { filter: { pid }, listPids: async () => (existsSync(join(procRoot, String(pid))) ? [pid] : []), labels: new Map() };
  }
  const pod = await resolvePod(target.podUid, target.container ?? '', {
    cgroupRoot: opts.cgroupRoot,
    ...(opts.cgroupVersion ? { cgroupVersion: opts.cgroupVersion } : {}),
    ...(opts.names ? { names: opts.names } : {}),
  });
  const labels = new Map(pod.containers.map((c) => [c.dir, c.name || c.id.slice(0, 12)]));
  const listPids = async (): Promise<number[]> => {
    const all: number[] = [];
    for (const [dir] of labels) all.push(...(await pidsIn([dir])));
    return all;
  };
  return { filter: { cgroupDirs: pod.containers.map((c) => c.dir) }, listPids, labels };
}

interface ProcessWatcher {
  stop(): void;
  /** Every snapshot taken, once those under way have finished. */
  settled(): Promise<Map<number, ProcessSnapshot>>;
}

/**
 * Snapshots the target's processes as they appear: bpftrace prints stacks only at the end, and
 * maps and binaries must be read while the processes still run.
 */
async function watchProcesses(target: ResolvedTarget, procRoot: string, cache: BinaryCache, pollMs: number): Promise<ProcessWatcher> {
  const processes = new Map<number, ProcessSnapshot>();
  const pending = new Map<number, Promise<void>>();
  const labelOf = async (pid: number): Promise<string> => {
    if (target.labels.size === 0) return containerOfPid(pid, procRoot);
    for (const [dir, label] of target.labels) if ((await pidsIn([dir])).includes(pid)) return label;
    return '';
  };
  const poll = async (): Promise<void> => {
    for (const pid of await target.listPids()) {
      if (processes.has(pid) || pending.has(pid)) continue;
      const p = (async () => {
        const snap = await snapshotProcess(pid, procRoot, cache, await labelOf(pid));
        if (snap) processes.set(pid, snap);
      })().finally(() => pending.delete(pid));
      pending.set(pid, p);
    }
  };
  await poll();
  const interval = setInterval(() => void poll(), pollMs);
  return {
    stop: () => clearInterval(interval),
    settled: async () => {
      await Promise.all(pending.values());
      return processes;
    },
  };
}

interface Sampled {
  run: Awaited<ReturnType<typeof runBpftrace>>;
  /** When the probes attached (or bpftrace started, if it never said). */
  startedUnixMs: number;
  attached: boolean;
}

/** Runs bpftrace over the window; a missing or unstartable bpftrace is the caller's error. */
async function sample(req: CaptureRequest, opts: CaptureOptions, bpftrace: string, script: string): Promise<Sampled> {
  const sampled = { startedUnixMs: Date.now(), attached: false };
  try {
    const run = await runBpftrace({
      bpftrace,
      script,
      seconds: req.seconds,
      mapKeys: mapKeysFor(req.hz, req.seconds, availableParallelism()),
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(opts.maxOutputBytes ? { maxOutputBytes: opts.maxOutputBytes } : {}),
      onAttached: () => {
        sampled.attached = true;
        sampled.startedUnixMs = Date.now();
        opts.onProgress?.(`sampling at ${req.hz} Hz for ${req.seconds} s`);
      },
    });
    return { ...sampled, run };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw bpftraceMissing(opts.bpftracePath);
    throw new NemuError(ErrorCodes.PROFILER_FAILED, `cannot start bpftrace (${bpftrace}): ${(e as Error).message}`, { status: 503 });
  }
}

/** A warning when the stacks hold fewer samples than the probe took (bpftrace's map was full). */
export function lostSamples(parsed: ParsedOutput): string | undefined {
  if (parsed.fired === undefined) return undefined;
  const kept = parsed.stacks.reduce((a, s) => a + s.count, 0);
  if (kept >= parsed.fired) return undefined;
  const lost = parsed.fired - kept;
  return `${lost} of ${parsed.fired} samples (${((100 * lost) / parsed.fired).toFixed(1)} %) lost: more distinct stacks than bpftrace's map holds; shorten the window or lower hz`;
}
