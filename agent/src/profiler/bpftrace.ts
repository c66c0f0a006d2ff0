/**
 * bpftrace as the sampler: the script (filtered in the kernel by cgroup id or by pid), the
 * child process under hard limits (kill timer, bounded output, abort), and the parsing of its
 * JSON output into raw stacks. bpftrace 0.17 has no `ustack(raw)`; `perf` mode prints every
 * frame as `<hex address> <symbol+off> (<module>)`, which gives both the exact address (for
 * our own symbolization) and bpftrace's symbol (used when the binary has one).
 */
import { spawn } from 'node:child_process';

import { ErrorCodes, NemuError } from '#common/errors.js';

import { isJsonObject, type JsonValue, member, parseJsonEntries } from './json-entries.ts';

/** Hard limits, whatever the controller asks: a capture is a short look, not a tracer. */
export const MAX_SECONDS = 60;
export const MAX_HZ = 199;
/** Past the window: bpftrace's start-up (attaching probes) and the final map print. */
export const KILL_GRACE_MS = 10_000;
/** A runaway map (millions of distinct stacks) must not eat the agent's memory. */
export const DEFAULT_MAX_OUTPUT_BYTES = 64 * 1024 * 1024;

/**
 * Entries of bpftrace's maps for a window: every sample may be a new stack, so up to
 * hz × seconds × CPUs, at least bpftrace's default 4096. Capped because each entry of the
 * kernel's stack maps holds a whole stack (~1 KiB, preallocated): 16,384 is 16 MiB per map.
 * A window with more distinct stacks loses some, and the capture says how many (`fired`).
 */
export function mapKeysFor(hz: number, seconds: number, cpus: number): number {
  return Math.min(16_384, Math.max(4096, hz * seconds * cpus));
}

export type SampleFilter = { cgroupDirs: string[] } | { pid: number };

export interface ScriptOptions {
  filter: SampleFilter;
  hz: number;
  seconds: number;
}

/** Checks the hard limits; out-of-range values are refused, not clamped, so the caller knows. */
export function checkLimits(seconds: number, hz: number): void {
  if (!Number.isInteger(seconds) || seconds < 1 || seconds > MAX_SECONDS) {
    throw new NemuError(ErrorCodes.PROFILER_LIMIT, `seconds must be an integer from 1 to ${MAX_SECONDS}, got ${seconds}`, { status: 400 });
  }
  if (!Number.isInteger(hz) || hz < 1 || hz > MAX_HZ) {
    throw new NemuError(ErrorCodes.PROFILER_LIMIT, `hz must be an integer from 1 to ${MAX_HZ}, got ${hz}`, { status: 400 });
  }
}

function quote(path: string): string {
  if (!/^[\w./@:+=,-]+$/.test(path)) {
    throw new NemuError(ErrorCodes.PROFILER_LIMIT, `refusing to put an unusual cgroup path into a bpftrace script: ${JSON.stringify(path)}`, { status: 400 });
  }
  return `"${path}"`;
}

/** Counts every sample taken, kept or not: a full stack map drops entries silently. */
const SAMPLES_MAP = '@nemu_samples';

/** Printed by the script once every probe is attached and the window has begun. */
export const SAMPLING_MARKER = 'nemutator: sampling';

/**
 * The script: one `profile` probe whose predicate is evaluated in the kernel, so samples of
 * other cgroups never reach user space; `interval` ends the capture.
 */
export function buildScript(opts: ScriptOptions): string {
  checkLimits(opts.seconds, opts.hz);
  let predicate: string;
  if ('pid' in opts.filter) {
    if (!Number.isInteger(opts.filter.pid) || opts.filter.pid <= 0) {
      throw new NemuError(ErrorCodes.PROFILER_LIMIT, `pid must be a positive integer, got ${opts.filter.pid}`, { status: 400 });
    }
    predicate = `pid == ${opts.filter.pid}`;
  } else {
    if (opts.filter.cgroupDirs.length === 0) throw new NemuError(ErrorCodes.PROFILER_LIMIT, 'no cgroup directory to sample', { status: 400 });
    predicate = opts.filter.cgroupDirs.map((d) => `cgroup == cgroupid(${quote(d)})`).join(' || ');
  }
  // The window is enforced in the kernel as well: `exit()` only asks user space to stop, and
  // until bpftrace gets a CPU to detach (seconds on a loaded node) the probe kept counting, so
  // a 2 s capture could hold 4 s of samples. BEGIN runs once every probe is attached, and
  // says so (SAMPLING_MARKER) on stdout.
  return [
    `BEGIN { @nemu_window_end = nsecs + ${opts.seconds} * 1000000000; printf("${SAMPLING_MARKER}\\n"); }`,
    `profile:hz:${opts.hz} /(${predicate}) && nsecs < @nemu_window_end/ {`,
    `  ${SAMPLES_MAP} = count();`,
    '  @stacks[pid, kstack(perf), ustack(perf)] = count();',
    '  @comm[pid] = comm;',
    '}',
    `interval:s:${opts.seconds} { exit(); }`,
    'END { clear(@nemu_window_end); }',
    '',
  ].join('\n');
}

export interface RawFrame {
  address: bigint;
  /** bpftrace's symbol without the offset; undefined when it could not resolve one. */
  symbol?: string;
  /** The module bpftrace named (user frames); undefined for kernel frames. */
  module?: string;
}

export interface RawStack {
  pid: number;
  /** Leaf first. */
  kernel: RawFrame[];
  /** Leaf first. */
  user: RawFrame[];
  count: number;
}

export interface ParsedOutput {
  stacks: RawStack[];
  comms: Map<number, string>;
  /** bpftrace said it attached its probes (the capture really ran). */
  attached: boolean;
  /** Samples the probe took in the window; more than the stacks hold when the map was full. */
  fired?: number;
}

/** Kernel text lives in the upper half on x86-64 and arm64. */
const KERNEL_START = 0xffff_8000_0000_0000n;
const FRAME = /^\t?([0-9a-f]+) (.*?)(?: \((.*)\))?$/;

function parseFrame(line: string): RawFrame | undefined {
  const m = FRAME.exec(line);
  if (m === null) return undefined;
  const frame: RawFrame = { address: BigInt(`0x${m[1]}`) };
  const sym = m[2] ?? '';
  if (sym !== '' && !sym.startsWith('0x') && sym !== '[unknown]') frame.symbol = sym.replace(/\+\d+$/, '');
  const module = m[3];
  if (module !== undefined && module !== '' && module !== '[unknown]') frame.module = module;
  return frame;
}

/**
 * Parses a map key `pid,<kstack>,<ustack>`: stacks are lines of `\t<addr> <sym> (<mod>)`;
 * kernel and user frames are told apart by address (symbols may contain commas).
 */
export function parseStackKey(key: string, count: number): RawStack | undefined {
  const comma = key.indexOf(',');
  const pid = Number(key.slice(0, comma));
  if (comma < 0 || !Number.isInteger(pid)) return undefined;
  const stack: RawStack = { pid, kernel: [], user: [], count };
  for (const line of key.slice(comma + 1).split('\n')) {
    if (!line.startsWith('\t')) continue;
    const frame = parseFrame(line);
    if (frame === undefined) continue;
    (frame.address >= KERNEL_START ? stack.kernel : stack.user).push(frame);
  }
  return stack;
}

/**
 * bpftrace `-f json` output: one JSON document per line. A stack map repeats a key when two
 * entries print alike (one stack, different threads), so members are read with their
 * duplicates and their counts added, never JSON.parse'd (which kept only the last).
 */
export function parseBpftraceOutput(stdout: string): ParsedOutput {
  const out: ParsedOutput = { stacks: [], comms: new Map(), attached: false };
  const byKey = new Map<string, RawStack>();
  for (const line of stdout.split('\n')) {
    if (!line.startsWith('{')) continue;
    let doc: JsonValue;
    try {
      doc = parseJsonEntries(line);
    } catch {
      continue;
    }
    const type = member(doc, 'type');
    if (type === 'attached_probes') out.attached = true;
    const data = member(doc, 'data');
    if (type !== 'map' || !isJsonObject(data)) continue;
    for (const [name, value] of data.members) readMap(out, byKey, name, value);
  }
  out.stacks = [...byKey.values()].filter((s) => s.count > 0);
  return out;
}

function readMap(out: ParsedOutput, byKey: Map<string, RawStack>, name: string, value: JsonValue): void {
  if (name === SAMPLES_MAP && typeof value === 'number') out.fired = (out.fired ?? 0) + value;
  if (!isJsonObject(value)) return;
  for (const [key, v] of value.members) {
    if (name === '@comm' && typeof v === 'string') out.comms.set(Number(key), v);
    if (name !== '@stacks' || typeof v !== 'number') continue;
    const seen = byKey.get(key);
    if (seen) seen.count += v;
    else {
      const s = parseStackKey(key, v);
      if (s !== undefined) byKey.set(key, s);
    }
  }
}

export interface BpftraceRun {
  stdout: string;
  stderr: string;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Why we stopped it, if we did: 'timeout', 'output', 'aborted'. */
  killed?: 'timeout' | 'output' | 'aborted';
  /** Wall time from spawn to the first `attached_probes` line (ms). */
  attachedAfterMs?: number;
  /** Wall time when the process ended. */
  endedAt: number;
}

export interface RunOptions {
  bpftrace: string;
  script: string;
  /** The window; the kill timer fires at seconds*1000 + graceMs. */
  seconds: number;
  graceMs?: number;
  maxOutputBytes?: number;
  signal?: AbortSignal;
  /** Called once the probes are attached (sampling has started). */
  onAttached?: () => void;
  /** BPFTRACE_MAP_KEYS_MAX: entries per map (mapKeysFor); bpftrace's default when unset. */
  mapKeys?: number;
}

const MAX_STDERR = 64 * 1024;

/**
 * Runs bpftrace and collects its output. Never rejects for bpftrace's own failures (the
 * caller diagnoses them from code and stderr); rejects only when it cannot be started.
 */
export function runBpftrace(opts: RunOptions): Promise<BpftraceRun> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const child = spawn(opts.bpftrace, ['-f', 'json', '-e', opts.script], {
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(opts.mapKeys ? { env: { ...process.env, BPFTRACE_MAP_KEYS_MAX: String(opts.mapKeys) } } : {}),
    });
    const out: Buffer[] = [];
    let outBytes = 0;
    let stderr = '';
    let killed: BpftraceRun['killed'];
    let attachedAfterMs: number | undefined;
    const limit = opts.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
    const kill = (why: NonNullable<BpftraceRun['killed']>) => {
      if (killed !== undefined) return;
      killed = why;
      // SIGINT first: bpftrace detaches its probes cleanly; SIGKILL if it does not go.
      child.kill('SIGINT');
      setTimeout(() => child.kill('SIGKILL'), 2000).unref();
    };
    const timer = setTimeout(() => kill('timeout'), opts.seconds * 1000 + (opts.graceMs ?? KILL_GRACE_MS));
    const onAbort = () => kill('aborted');
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    if (opts.signal?.aborted) onAbort();

    child.stdout.on('data', (d: Buffer) => {
      if (attachedAfterMs === undefined && d.includes('attached_probes')) {
        attachedAfterMs = Date.now() - started;
        opts.onAttached?.();
      }
      outBytes += d.length;
      if (outBytes > limit) {
        kill('output');
        return;
      }
      out.push(d);
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      if (stderr.length < MAX_STDERR) stderr += d.slice(0, MAX_STDERR - stderr.length);
    });
    child.on('error', (err) => {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      const run: BpftraceRun = { stdout: Buffer.concat(out).toString('utf8'), stderr, code, signal, endedAt: Date.now() };
      if (killed !== undefined) run.killed = killed;
      if (attachedAfterMs !== undefined) run.attachedAfterMs = attachedAfterMs;
      resolve(run);
    });
  });
}
