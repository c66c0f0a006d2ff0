import { describe, expect, it } from 'vitest';

import type { BpftraceRun } from './bpftrace.ts';
import { canLoadBpf, diagnoseRun, effectiveCaps, preflight } from './diagnose.ts';

const run = (stderr: string, code = 1, extra: Partial<BpftraceRun> = {}): BpftraceRun => ({ stdout: '', stderr, code, signal: null, endedAt: 0, ...extra });

describe('profiler diagnostics', () => {
  it('names the missing bpftrace and how to install it', () => {
    let err: unknown;
    try {
      preflight({ bpftracePath: '/nonexistent/bpftrace', caps: ~0n });
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({
      code: 'NEMU_ERR_PROFILER_NO_BPFTRACE',
      message: expect.stringMatching(/bpftrace not found \(bpftracePath = \/nonexistent\/bpftrace\); install it \(Debian\/Ubuntu: apt-get install bpftrace/),
    });
  });

  it('refuses without root or CAP_BPF + CAP_PERFMON, before starting anything', () => {
    expect(canLoadBpf(1n << 21n)).toBe(true);
    expect(canLoadBpf((1n << 38n) | (1n << 39n))).toBe(true);
    expect(canLoadBpf(1n << 39n)).toBe(false);
    expect(effectiveCaps('Name:\tx\nCapEff:\t000001fffeffffff\n')).toBe(0x1fffeffffffn);
    expect(() => preflight({ bpftracePath: 'sh', caps: 0n })).toThrow(/needs root, or CAP_BPF and CAP_PERFMON/);
  });

  it('warns, without failing, when the kernel has no BTF', () => {
    const pf = preflight({ bpftracePath: 'sh', caps: ~0n, sysRoot: '/nonexistent-sys' });
    expect(pf.warnings.join()).toMatch(/no BTF for this kernel/);
  });

  it('tells permission, BPF, perf-event and BTF failures apart from bpftrace stderr', () => {
    const cases: Array<[string, RegExp]> = [
      ['ERROR: bpftrace currently only supports running as the root user.', /PERMISSION|privileges/],
      ['ERROR: Error loading program: (Operation not permitted)', /privileges to load BPF/],
      ['ERROR: Kernel does not support BPF', /no usable BPF/],
      ['ERROR: Failed to attach probe: profile:hz:49', /refused the sampling probe/],
      ['ERROR: Could not resolve BTF for kernel types', /CONFIG_DEBUG_INFO_BTF/],
    ];
    for (const [stderr, message] of cases) {
      const e = diagnoseRun(run(`ERROR: Unknown error -1: couldn't set RLIMIT_MEMLOCK for bpftrace.\n${stderr}`), false)!;
      expect(e.message).toMatch(message);
      expect(e.message).not.toMatch(/RLIMIT_MEMLOCK/);
    }
    expect(diagnoseRun(run('', 0), true)).toBeUndefined();
    expect(diagnoseRun(run('', null as unknown as number, { killed: 'timeout' }), true)!.message).toMatch(/did not finish within the window/);
    expect(diagnoseRun(run('', 0, { killed: 'output' }), true)!.message).toMatch(/output limit/);
  });
});
