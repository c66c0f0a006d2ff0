import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

import { buildGo } from '#test/harness/golang.js';
import { requireTool } from '#test/harness/tools.js';
import { until } from '#test/harness/wait.js';

import { buildScript, checkLimits, mapKeysFor, parseBpftraceOutput, parseStackKey, runBpftrace, SAMPLING_MARKER } from './bpftrace.ts';
import { lostSamples } from './capture.ts';
import { isJsonObject, member, parseJsonEntries } from './json-entries.ts';

describe('bpftrace script', () => {
  it('filters in the kernel by every container cgroup id, ORed, and stops after the window', () => {
    const s = buildScript({ filter: { cgroupDirs: ['/sys/fs/cgroup/a.scope', '/sys/fs/cgroup/b.scope'] }, hz: 49, seconds: 30 });
    expect(s).toContain(
      'profile:hz:49 /(cgroup == cgroupid("/sys/fs/cgroup/a.scope") || cgroup == cgroupid("/sys/fs/cgroup/b.scope")) && nsecs < @nemu_window_end/',
    );
    expect(s).toContain('kstack(perf), ustack(perf)');
    expect(s).toContain('interval:s:30 { exit(); }');
  });

  it('refuses values past the hard limits instead of clamping them', () => {
    expect(() => checkLimits(61, 49)).toThrow(/seconds must be an integer from 1 to 60/);
    expect(() => checkLimits(30, 200)).toThrow(/hz must be an integer from 1 to 199/);
    expect(() => checkLimits(0, 49)).toThrow(/seconds/);
    expect(() => buildScript({ filter: { cgroupDirs: ['/x"); system("rm'] }, hz: 49, seconds: 1 })).toThrow(/unusual cgroup path/);
  });
});

describe('bpftrace output', () => {
  const key =
    '31816,\n\tffffffff816bb438 vfs_write+120\n\tffffffff821ef691 do_syscall_64+113\n,\n\t4906da main.F[go.shape.int,go.shape.string]+26 (/bin/x)\n\t434f72 0x434f72 ([unknown])\n';
  it('splits kernel and user frames by address, even with commas in symbols', () => {
    const s = parseStackKey(key, 7)!;
    expect(s.pid).toBe(31816);
    expect(s.count).toBe(7);
    expect(s.kernel.map((f) => f.symbol)).toEqual(['vfs_write', 'do_syscall_64']);
    expect(s.user).toEqual([{ address: 0x4906dan, symbol: 'main.F[go.shape.int,go.shape.string]', module: '/bin/x' }, { address: 0x434f72n }]);
  });

  it('reads the JSON lines of a run: probes attached, stacks and comms', () => {
    const out = [
      '{"type": "attached_probes", "data": {"probes": 2}}',
      '',
      JSON.stringify({ type: 'map', data: { '@comm': { '31816': 'hotloop' } } }),
      JSON.stringify({ type: 'map', data: { '@stacks': { [key]: 3, '12,,\n\t4000 0x4000 ([unknown])\n': 1 } } }),
      'not json',
    ].join('\n');
    const p = parseBpftraceOutput(out);
    expect(p.attached).toBe(true);
    expect(p.comms.get(31816)).toBe('hotloop');
    expect(p.stacks.map((s) => [s.pid, s.count, s.kernel.length, s.user.length])).toEqual([
      [31816, 3, 2, 2],
      [12, 1, 0, 1],
    ]);
  });
});

describe('every sample counted', () => {
  it('adds up a stack key that bpftrace prints twice, and reads how many samples the probe took', () => {
    const stack = '7,\n\t4000 main.spin+4 (/bin/busy)\n';
    const line = `{"type": "map", "data": {"@stacks": {${JSON.stringify(stack)}: 3, ${JSON.stringify(stack)}: 4}}}`;
    const p = parseBpftraceOutput([line, '{"type": "map", "data": {"@nemu_samples": 7}}'].join('\n'));
    expect(p.stacks.map((s) => s.count)).toEqual([7]);
    expect(p.fired).toBe(7);
    expect(lostSamples(p)).toBeUndefined();
  });

  /** Two goroutines spinning in one function on two threads, sampled by the real bpftrace. */
  async function sampleBusy(mapKeys: number) {
    const bpftrace = requireTool('bpftrace', 'bpftrace');
    const binary = await buildGo(new URL('../../../test/fixtures/go/busy', import.meta.url).pathname);
    const busy = spawn(binary, ['-threads', '2', '-seconds', '30'], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      const [first] = (await once(busy.stdout, 'data')) as [Buffer];
      const pid = Number(/pid=(\d+)/.exec(first.toString())![1]);
      const script = buildScript({ filter: { pid }, hz: 99, seconds: 2 });
      return await runBpftrace({ bpftrace, script, seconds: 2, mapKeys });
    } finally {
      busy.kill('SIGKILL');
    }
  }

  it('keeps every sample of a stack seen on several threads (JSON.parse kept only the last)', { timeout: 60_000 }, async () => {
    const run = await sampleBusy(mapKeysFor(99, 2, 2));
    const p = parseBpftraceOutput(run.stdout);
    // The situation this guards: bpftrace printed one stack key more than once.
    const stacksLine = run.stdout.split('\n').find((l) => l.includes('"@stacks"'))!;
    const stacks = member(member(parseJsonEntries(stacksLine), 'data'), '@stacks');
    const keys = isJsonObject(stacks) ? stacks.members.map(([k]) => k) : [];
    expect(new Set(keys).size).toBeLessThan(keys.length);
    expect(p.fired).toBeGreaterThan(10);
    expect(p.stacks.reduce((a, s) => a + s.count, 0)).toBe(p.fired);
  });

  it('says how many samples were lost when the stacks outgrow the map', { timeout: 60_000 }, async () => {
    const p = parseBpftraceOutput((await sampleBusy(1)).stdout);
    const kept = p.stacks.reduce((a, s) => a + s.count, 0);
    expect(kept).toBeLessThan(p.fired!);
    expect(lostSamples(p)).toMatch(new RegExp(`^${p.fired! - kept} of ${p.fired} samples .* lost`));
  });
});

/** utime + stime of a process, in seconds (USER_HZ is 100 on Linux). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

describe('the capture window', () => {
  it('holds in the kernel even when bpftrace gets no CPU to detach until seconds after it', { timeout: 30_000 }, async () => {
    const bpftrace = requireTool('bpftrace', 'bpftrace');
    const busy = spawn('sh', ['-c', 'while :; do :; done'], { stdio: 'ignore' });
    try {
      const script = buildScript({ filter: { pid: busy.pid! }, hz: 99, seconds: 1 });
      const bt = spawn(bpftrace, ['-f', 'json', '-e', script], { stdio: ['ignore', 'pipe', 'ignore'] });
      let out = '';
      bt.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
      while (!out.includes(SAMPLING_MARKER)) await once(bt.stdout, 'data');
      // A node too busy to schedule bpftrace: frozen from the start of its 1 s window until the
      // target has run 2.5 CPU-seconds more (the old script counted every one of them).
      bt.kill('SIGSTOP');
      const from = cpuSeconds(busy.pid!);
      await until('the target to run 2.5 CPU-seconds with bpftrace frozen', () => cpuSeconds(busy.pid!) - from >= 2.5, 20_000);
      bt.kill('SIGCONT');
      await once(bt, 'close');
      const total = parseBpftraceOutput(out).stacks.reduce((a, s) => a + s.count, 0);
      expect(total).toBeGreaterThan(0);
      // One thread, 1 s at 99 Hz; without the in-kernel bound this was ~4 s of samples.
      expect(total).toBeLessThanOrEqual(99 * 1.2);
    } finally {
      busy.kill('SIGKILL');
    }
  });
});

describe('runBpftrace guard', () => {
  it('kills a sampler that outlives its window plus grace, and one that prints too much', async () => {
    const hang = await runBpftrace({ bpftrace: `${process.cwd()}/agent/src/profiler/testdata/fake-bpftrace.sh`, script: 'hang', seconds: 0, graceMs: 300 });
    expect(hang.killed).toBe('timeout');
    const loud = await runBpftrace({
      bpftrace: `${process.cwd()}/agent/src/profiler/testdata/fake-bpftrace.sh`,
      script: 'loud',
      seconds: 5,
      maxOutputBytes: 10_000,
    });
    expect(loud.killed).toBe('output');
    expect(loud.stdout.length).toBeLessThanOrEqual(10_000);
    const ac = new AbortController();
    const aborted = runBpftrace({ bpftrace: `${process.cwd()}/agent/src/profiler/testdata/fake-bpftrace.sh`, script: 'hang', seconds: 30, signal: ac.signal });
    ac.abort();
    expect((await aborted).killed).toBe('aborted');
  });
});
