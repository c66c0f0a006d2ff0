/**
 * Why a capture cannot run, in words a node operator can act on: bpftrace missing, no
 * privileges (root, or CAP_BPF + CAP_PERFMON), a kernel without BPF or perf events, no BTF.
 * `preflight` checks what can be checked before starting; `diagnoseRun` reads bpftrace's
 * exit and stderr afterwards.
 */
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';

import { ErrorCodes, NemuError } from '#common/errors.js';

import type { BpftraceRun } from './bpftrace.ts';

const INSTALL = 'install it (Debian/Ubuntu: apt-get install bpftrace; the agent image ships it) or set the agent key bpftracePath';

/** Absolute path of the bpftrace to run, or undefined when it is not there. */
export function findBpftrace(configured: string, pathEnv = process.env.PATH ?? ''): string | undefined {
  const candidates = isAbsolute(configured)
    ? [configured]
    : [...pathEnv.split(delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin', '/usr/bin'].filter(Boolean).map((d) => join(d, configured));
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK);
      return c;
    } catch {
      // next
    }
  }
  return undefined;
}

export function bpftraceMissing(configured: string): NemuError {
  return new NemuError(ErrorCodes.PROFILER_NO_BPFTRACE, `bpftrace not found (bpftracePath = ${configured}); ${INSTALL}`, { status: 503 });
}

const CAP_SYS_ADMIN = 21n;
const CAP_PERFMON = 38n;
const CAP_BPF = 39n;

/** Effective capabilities from a /proc/<pid>/status text. */
export function effectiveCaps(status: string): bigint | undefined {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(status);
  return m ? BigInt(`0x${m[1]}`) : undefined;
}

export function canLoadBpf(caps: bigint): boolean {
  const has = (bit: bigint) => (caps >> bit) & 1n;
  return has(CAP_SYS_ADMIN) === 1n || (has(CAP_BPF) === 1n && has(CAP_PERFMON) === 1n);
}

export interface Preflight {
  bpftrace: string;
  /** Not fatal: what the user may notice (no BTF: kernel types unavailable, unused by the sampler). */
  warnings: string[];
}

export interface PreflightOptions {
  bpftracePath: string;
  procRoot?: string;
  /** /sys of the host (tests point it at a fake tree). */
  sysRoot?: string;
  /** Effective capabilities of this process; default: read /proc/self/status. */
  caps?: bigint;
}

/** Everything that can be checked before bpftrace starts; throws the first blocking problem. */
export function preflight(opts: PreflightOptions): Preflight {
  const bpftrace = findBpftrace(opts.bpftracePath);
  if (bpftrace === undefined) throw bpftraceMissing(opts.bpftracePath);
  const warnings: string[] = [];
  let caps = opts.caps;
  if (caps === undefined) {
    try {
      caps = effectiveCaps(readFileSync('/proc/self/status', 'utf8'));
    } catch {
      caps = undefined;
    }
  }
  if (caps !== undefined && !canLoadBpf(caps)) {
    throw new NemuError(
      ErrorCodes.PROFILER_PERMISSION,
      'the agent may not load BPF programs: it needs root, or CAP_BPF and CAP_PERFMON (CAP_SYS_ADMIN on kernels before 5.8); ' +
        'run the agent DaemonSet privileged (manifests/agent) or add those capabilities',
      { status: 503 },
    );
  }
  const sys = opts.sysRoot ?? '/sys';
  if (!existsSync(join(sys, 'kernel/btf/vmlinux'))) {
    warnings.push(`no BTF for this kernel (${join(sys, 'kernel/btf/vmlinux')} missing): CPU sampling works, kernel type information is unavailable`);
  }
  return { bpftrace, warnings };
}

const RULES: Array<{ test: RegExp; code: string; status: number; advice: string }> = [
  {
    test: /only supports running as the root user|Operation not permitted|EPERM|Permission denied|perf_event_paranoid/i,
    code: ErrorCodes.PROFILER_PERMISSION,
    status: 503,
    advice: 'the agent lacks the privileges to load BPF programs or open perf events; run it as root (privileged DaemonSet) or grant CAP_BPF and CAP_PERFMON',
  },
  {
    test: /does not support BPF|bpf\(\) syscall|Function not implemented|ENOSYS|Kernel does not support|CONFIG_BPF/i,
    code: ErrorCodes.PROFILER_NO_BPF,
    status: 503,
    advice: 'this kernel has no usable BPF (CONFIG_BPF_SYSCALL, CONFIG_BPF_EVENTS); profiling needs a kernel built with them',
  },
  {
    test: /Failed to attach probe|perf_event_open|No such device|profile probe/i,
    code: ErrorCodes.PROFILER_NO_BPF,
    status: 503,
    advice: 'the kernel refused the sampling probe (perf events unavailable: CONFIG_PERF_EVENTS, or a VM without PMU/timer support)',
  },
  {
    test: /BTF/,
    code: ErrorCodes.PROFILER_NO_BTF,
    status: 503,
    advice: 'bpftrace needs BTF for this script and the kernel has none (/sys/kernel/btf/vmlinux); use a kernel built with CONFIG_DEBUG_INFO_BTF',
  },
  {
    test: /cgroupid|cgroup path/i,
    code: ErrorCodes.PROFILER_TARGET,
    status: 409,
    advice: "a container's cgroup disappeared or is not in the cgroup v2 hierarchy (cgroupRoot); the container may have restarted, try again",
  },
];

/** Lines of stderr that carry information (bpftrace's RLIMIT_MEMLOCK note is harmless on kernels ≥ 5.11). */
export function meaningfulStderr(stderr: string): string {
  return stderr
    .split('\n')
    .filter((l) => l.trim() !== '' && !/RLIMIT_MEMLOCK/.test(l) && !/^\s*~+\s*$/.test(l))
    .slice(0, 12)
    .join('\n');
}

/**
 * The error a failed bpftrace run stands for, or undefined when it ran (exit 0, or ended by
 * our own SIGINT after printing). A run we killed for exceeding limits is an error too.
 */
export function diagnoseRun(run: BpftraceRun, attached: boolean): NemuError | undefined {
  const stderr = meaningfulStderr(run.stderr);
  if (run.killed === 'output') {
    return new NemuError(
      ErrorCodes.PROFILER_FAILED,
      'bpftrace printed more than the output limit (too many distinct stacks); the capture was aborted; try a lower hz or fewer seconds',
      {
        status: 502,
      },
    );
  }
  if (run.killed === 'timeout') {
    return new NemuError(
      ErrorCodes.PROFILER_FAILED,
      `bpftrace did not finish within the window plus its grace time and was killed${stderr ? `; it said: ${stderr}` : ''}`,
      { status: 502 },
    );
  }
  if (run.killed === 'aborted') {
    return new NemuError(ErrorCodes.PROFILER_ABORTED, 'the capture was aborted (the agent is stopping or the request was cancelled)', { status: 503 });
  }
  if (run.code === 0 && attached) return undefined;
  for (const rule of RULES) {
    if (rule.test.test(stderr)) {
      return new NemuError(rule.code, `${rule.advice}. bpftrace said: ${stderr}`, { status: rule.status });
    }
  }
  return new NemuError(
    ErrorCodes.PROFILER_FAILED,
    `bpftrace ${run.signal ? `was ended by ${run.signal}` : `exited with code ${run.code}`}${attached ? '' : ' before attaching its probes'}${stderr ? `: ${stderr}` : ' and said nothing'}`,
    { status: 502 },
  );
}
