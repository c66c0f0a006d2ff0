/**
 * The Go symbolizer against the Go runtime's own tracebacks: a program given SIGQUIT with
 * GOTRACEBACK=system prints every goroutine's frames — inlined ones as `f(...)` without a pc,
 * physical ones with `pc=0x…` — from the tables of the binary itself. Two Go releases:
 * - esbuild, from npm (a dependency of vitest): Go 1.26, stripped, no .go.buildinfo, pclntab
 *   magic 0xfffffff1 and a header without textStart;
 * - the hotloop fixture built with the installed Go (1.19), stripped, caught while running
 *   (a goroutine stopped by the signal is looked up at its exact pc, not pc - 1).
 */
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';

import { readGoBinaryInfo } from '#agent/profiler/golang/binary-info.js';
import { type GoFrame, GoSymbolizer } from '#agent/profiler/golang/symbolizer.js';

import { buildGo } from '../harness/golang.ts';

const HOTLOOP = fileURLToPath(new URL('../fixtures/go/hotloop/', import.meta.url));

/** The esbuild executable for this platform, as npm installed it. */
function esbuildBinary(): string {
  const pkg = `@esbuild/${process.platform}-${process.arch}`;
  try {
    return join(dirname(createRequire(import.meta.url).resolve(`${pkg}/package.json`)), 'bin', 'esbuild');
  } catch {
    throw new Error(`${pkg} is not installed: run \`npm ci\` (it comes with vitest's esbuild)`);
  }
}

interface TracebackFrame {
  function: string;
  file: string;
  line: number;
}

/** A physical frame with the inlined frames printed above it, innermost first. */
interface TracebackGroup {
  frames: TracebackFrame[];
  pc: number;
  /** First group of its goroutine: its pc may be where a signal stopped it, not a return address. */
  top: boolean;
}

function parseTraceback(text: string): TracebackGroup[] {
  const groups: TracebackGroup[] = [];
  const lines = text.split('\n');
  let frames: TracebackFrame[] = [];
  let top = false;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    if (line.startsWith('goroutine ')) {
      frames = [];
      top = true;
      continue;
    }
    if (line.startsWith('created by ')) {
      i++; // its location line; not a frame of this stack
      frames = [];
      continue;
    }
    const call = /^(\S.*)\(.*\)$/.exec(line);
    const loc = /^\t(.+):(\d+)(?: \+0x[0-9a-f]+)?(?: fp=\S+ sp=\S+ pc=(0x[0-9a-f]+))?$/.exec(lines[i + 1] ?? '');
    if (call === null || loc === null) continue;
    i++;
    frames.push({ function: call[1] as string, file: loc[1] as string, line: Number(loc[2]) });
    if (loc[3] !== undefined) {
      groups.push({ frames, pc: Number(loc[3]), top });
      frames = [];
      top = false;
    }
  }
  return groups;
}

/** Starts the program, gives it settleMs to get busy, sends SIGQUIT and returns what it printed. */
async function traceback(binary: string, args: string[], stdin: 'pipe' | 'ignore', settleMs: number): Promise<string> {
  const child = spawn(binary, args, { env: { ...process.env, GOTRACEBACK: 'system' }, stdio: [stdin, 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  await new Promise((resolve) => setTimeout(resolve, settleMs));
  child.kill('SIGQUIT');
  await exited;
  return stderr;
}

/**
 * The traceback of the program once it has reached the state `ready` recognises: a loaded
 * machine may need longer than usual to get there, so the wait grows between tries.
 */
async function tracebackWhen(
  binary: string,
  args: string[],
  stdin: 'pipe' | 'ignore',
  ready: (groups: TracebackGroup[]) => boolean,
): Promise<TracebackGroup[]> {
  let groups: TracebackGroup[] = [];
  for (const settleMs of [300, 1000, 3000, 6000]) {
    groups = parseTraceback(await traceback(binary, args, stdin, settleMs));
    if (ready(groups)) return groups;
  }
  throw new Error(`${binary} never reached the expected state; last traceback had ${groups.length} frames`);
}

const hasFunction = (name: string) => (groups: TracebackGroup[]) => groups.some((g) => g.frames.some((f) => f.function === name));

/** Frames of the symbolizer in the traceback's shape: pc - 1 for a return address, as the runtime looks up. */
function expected(symbolizer: GoSymbolizer, group: TracebackGroup, exactPc: boolean): TracebackFrame[] {
  return symbolizer.symbolize(exactPc ? group.pc : group.pc - 1).map(({ function: fn, file, line }: GoFrame) => ({ function: fn, file, line }));
}

function checkAgainstTraceback(symbolizer: GoSymbolizer, groups: TracebackGroup[]): { inlined: number } {
  let inlined = 0;
  for (const group of groups) {
    const asReturn = expected(symbolizer, group, false);
    const matches = JSON.stringify(asReturn) === JSON.stringify(group.frames);
    // A goroutine stopped by the signal itself is looked up at its exact pc.
    const got = !matches && group.top ? expected(symbolizer, group, true) : asReturn;
    expect(got, `pc 0x${group.pc.toString(16)}`).toEqual(group.frames);
    if (group.frames.length > 1) inlined += group.frames.length - 1;
  }
  return { inlined };
}

describe('esbuild (Go 1.26, stripped, from npm)', () => {
  let binary: string;
  beforeAll(() => {
    binary = esbuildBinary();
  });

  it('is recognised as Go from its pclntab alone', async () => {
    expect(await readGoBinaryInfo(binary)).toEqual({ goVersion: 'unknown (go1.20+)', stripped: true, hasPclntab: true });
  });

  it('symbolizes every frame of its own traceback, inlined frames included', async () => {
    const symbolizer = await GoSymbolizer.open(binary);
    expect(symbolizer.format).toBe('1.20');
    expect(symbolizer.expandsInlinedCalls).toBe(true);
    // esbuild with no arguments reads stdin (io.ReadAll, inlined into its CLI): its goroutines
    // wait, parked, for the signal.
    const groups = await tracebackWhen(binary, [], 'pipe', hasFunction('io.ReadAll'));
    expect(groups.length).toBeGreaterThan(5);
    const { inlined } = checkAgainstTraceback(symbolizer, groups);
    expect(inlined).toBeGreaterThan(0);
  });

  it('symbolizes 10k pcs well under 100 ms', async () => {
    // The worst case for the caches: 10k pcs spread evenly over the whole text (a profile
    // concentrates on far fewer functions). Each run uses a fresh symbolizer, so nothing is
    // cached; the first run also pays for the JIT; the best of the others is the cost. CPU
    // time, not wall time: the test machines run other suites at the same time.
    const cpuMs = (): number => {
      const { user, system } = process.cpuUsage();
      return (user + system) / 1000;
    };
    const runs: { ms: number; frames: number; cachedMs: number }[] = [];
    for (let run = 0; run < 4; run++) {
      const symbolizer = await GoSymbolizer.open(binary);
      const step = Math.floor(0x5a0000 / 10_000); // esbuild's text is 0x5a51b1 bytes
      const pcs = Array.from({ length: 10_000 }, (_, i) => symbolizer.textStart + i * step + (i % 7));
      const t0 = cpuMs();
      let frames = 0;
      for (const pc of pcs) frames += symbolizer.symbolize(pc).length;
      const ms = cpuMs() - t0;
      const t1 = cpuMs();
      for (const pc of pcs) symbolizer.symbolize(pc);
      runs.push({ ms, frames, cachedMs: cpuMs() - t1 });
    }
    const best = Math.min(...runs.slice(1).map((r) => r.ms));
    console.log(
      `symbolize 10k pcs, CPU ms: ${runs.map((r) => r.ms.toFixed(1)).join(' / ')} (first run cold JIT), ` +
        `cached ${runs.at(-1)?.cachedMs.toFixed(1)}, ${runs[0]?.frames} frames`,
    );
    expect(runs[0]?.frames).toBeGreaterThan(10_000); // inlined frames included
    expect(best).toBeLessThan(100);
  });
});

describe('hotloop (installed Go, stripped), stopped while running', () => {
  it('symbolizes every frame of its own traceback, the running one at its exact pc', async () => {
    const binary = await buildGo(HOTLOOP, { stripped: true });
    const symbolizer = await GoSymbolizer.open(binary);
    const groups = await tracebackWhen(binary, ['-seconds', '30'], 'ignore', hasFunction('main.hotFunction'));
    checkAgainstTraceback(symbolizer, groups);
  }, 300_000);
});
