/**
 * One capture, end to end: check limits and the node (preflight), resolve the target to
 * cgroup directories (or a pid), run bpftrace while snapshotting every process that appears in
 * the target (maps and binaries must be read while the processes run), then symbolize.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { CgroupVersionOption } from '../cgroups/hierarchy.ts';
import { ErrorCodes, NemuError } from '../../../common/src/errors.ts';
import { buildScript, checkLimits, parseBpftraceOutput, runBpftrace, type SampleFilter } from './bpftrace.ts';
import { bpftraceMissing, diagnoseRun, preflight } from './diagnose.ts';
import { BinaryCache, snapshotProcess, symbolizeStacks, type ProcessSnapshot, type SymbolizedProfile } from './symbolize.ts';
import { containerOfPid, pidsIn, resolvePod, type ContainerNames } from './target.ts';

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
  const cache = opts.cache ?? new BinaryCache();
  const warnings = [...pf.warnings];

  let filter: SampleFilter;
  let listPids: () => Promise<number[]>;
  let labels = new Map<string, string>();
  if ('pid' in req.target) {
    const pid = req.target.pid;
    if (!Number.isInteger(pid) || pid <= 0 || !existsSync(join(procRoot, String(pid)))) {
      throw new NemuError(ErrorCodes.PROFILER_TARGET, `no process ${pid} on this node`, { status: 404 });
    }
    filter = { pid };
    listPids = async () => (existsSync(join(procRoot, String(pid))) ? [pid] : []);
  } else {
    const pod = await resolvePod(req.target.podUid, req.target.container ?? '', {
      cgroupRoot: opts.cgroupRoot,
      ...(opts.cgroupVersion ? { cgroupVersion: opts.cgroupVersion } : {}),
      ...(opts.names ? { names: opts.names } : {}),
    });
    filter = { cgroupDirs: pod.containers.map((c) => c.dir) };
    labels = new Map(pod.containers.map((c) => [c.dir, c.name || c.id.slice(0, 12)]));
    listPids = async () => {
      const all: number[] = [];
      for (const [dir] of labels) all.push(...(await pidsIn([dir])));
      return all;
    };
  }

  // Snapshot processes as they appear; bpftrace prints stacks only at the end.
  const processes = new Map<number, ProcessSnapshot>();
  const pending = new Map<number, Promise<void>>();
  const labelOf = async (pid: number): Promise<string> => {
    if (labels.size === 0) return containerOfPid(pid, procRoot);
    for (const [dir, label] of labels) if ((await pidsIn([dir])).includes(pid)) return label;
    return '';
  };
  const poll = async () => {
    for (const pid of await listPids()) {
      if (processes.has(pid) || pending.has(pid)) continue;
      const p = (async () => {
        const snap = await snapshotProcess(pid, procRoot, cache, await labelOf(pid));
        if (snap) processes.set(pid, snap);
      })().finally(() => pending.delete(pid));
      pending.set(pid, p);
    }
  };
  await poll();
  const interval = setInterval(() => void poll(), opts.pollMs ?? 250);

  const script = buildScript({ filter, hz: req.hz, seconds: req.seconds });
  let startedUnixMs = Date.now();
  let attached = false;
  let run;
  try {
    run = await runBpftrace({
      bpftrace: pf.bpftrace,
      script,
      seconds: req.seconds,
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(opts.maxOutputBytes ? { maxOutputBytes: opts.maxOutputBytes } : {}),
      onAttached: () => {
        attached = true;
        startedUnixMs = Date.now();
        opts.onProgress?.(`sampling at ${req.hz} Hz for ${req.seconds} s`);
      },
    });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw bpftraceMissing(opts.bpftracePath);
    throw new NemuError(ErrorCodes.PROFILER_FAILED, `cannot start bpftrace (${pf.bpftrace}): ${(e as Error).message}`, { status: 503 });
  } finally {
    clearInterval(interval);
  }
  await Promise.all(pending.values());
  const parsed = parseBpftraceOutput(run.stdout);
  const failure = diagnoseRun(run, attached || parsed.attached);
  if (failure) throw failure;

  opts.onProgress?.('symbolizing');
  const t0 = Date.now();
  const profile = symbolizeStacks(parsed.stacks, processes, parsed.comms);
  if (parsed.stacks.length === 0) {
    warnings.push(`no samples: the target used no CPU during the ${req.seconds} s window (idle, or it exited)`);
  }
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
