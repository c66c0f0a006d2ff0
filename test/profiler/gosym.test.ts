/**
 * The Go symbolizer against Go's own tools and runtime, on programs built here with the
 * installed Go (1.19 on these machines), normal and `-ldflags='-s -w'`:
 * - `go tool nm` (unstripped build) for function addresses,
 * - `go tool addr2line` for file:line — it prints the physical function with the innermost
 *   (inlined) file:line,
 * - runtime.CallersFrames inside test/fixtures/go/inline for the full inline expansion.
 */
import { execFileSync, spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';

import { ElfFile, withElfFile } from '#agent/profiler/elf/elf-file.js';
import { findMapping, parseProcMaps, runtimeAddressToVaddr } from '#agent/profiler/elf/maps.js';
import { readGoBinaryInfo } from '#agent/profiler/golang/binary-info.js';
import { type GoFrame, GoSymbolizer } from '#agent/profiler/golang/symbolizer.js';

import { buildGo } from '../harness/golang.ts';
import { requireTool } from '../harness/tools.ts';

const HOTLOOP = fileURLToPath(new URL('../fixtures/go/hotloop/', import.meta.url));
const INLINE = fileURLToPath(new URL('../fixtures/go/inline/', import.meta.url));

const goEnv = { ...process.env, GOTOOLCHAIN: 'local', GOFLAGS: '' };
let go: string;
let goVersion: string;

function goTool(args: string[], input?: string): string {
  return execFileSync(go, ['tool', ...args], { env: goEnv, input, encoding: 'utf8', maxBuffer: 64 << 20 });
}

/** name → address, from `go tool nm`. */
function nm(binary: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of goTool(['nm', binary]).split('\n')) {
    const m = /^\s*([0-9a-f]+) [A-Za-z] (.+)$/.exec(line);
    if (m !== null) out.set(m[2] as string, parseInt(m[1] as string, 16));
  }
  return out;
}

/** For each pc: the physical function and the innermost file:line, from `go tool addr2line`. */
function addr2line(binary: string, pcs: number[]): { function: string; file: string; line: number }[] {
  const lines = goTool(['addr2line', binary], pcs.map((pc) => `0x${pc.toString(16)}\n`).join(''))
    .trimEnd()
    .split('\n');
  return pcs.map((_, i) => {
    const loc = lines[2 * i + 1] ?? '';
    const colon = loc.lastIndexOf(':');
    return { function: lines[2 * i] ?? '', file: loc.slice(0, colon), line: Number(loc.slice(colon + 1)) };
  });
}

/** 1-based number of the first source line matching re. */
async function sourceLine(file: string, re: RegExp): Promise<number> {
  const lines = (await readFile(file, 'utf8')).split('\n');
  const i = lines.findIndex((l) => re.test(l));
  if (i < 0) throw new Error(`${re} not in ${file}`);
  return i + 1;
}

beforeAll(async () => {
  go = requireTool('go', 'golang-go');
  goVersion = execFileSync(go, ['env', 'GOVERSION'], { env: goEnv, encoding: 'utf8' }).trim();
});

describe('Go binary detection', () => {
  let normal: string;
  let stripped: string;
  beforeAll(async () => {
    [normal, stripped] = await Promise.all([buildGo(HOTLOOP), buildGo(HOTLOOP, { stripped: true })]);
  }, 300_000);

  it('reports the Go version and the main module of a normal build', async () => {
    expect(await readGoBinaryInfo(normal)).toEqual({
      goVersion,
      modulePath: 'nemutator.io/fixtures/hotloop',
      mainPath: 'nemutator.io/fixtures/hotloop',
      stripped: false,
      hasPclntab: true,
    });
    expect(goVersion).toMatch(/^go1\.\d+/);
  });

  it('still recognises a -s -w build, which has no .symtab but keeps .gopclntab and .go.buildinfo', async () => {
    await withElfFile(stripped, async (elf) => {
      expect(await elf.symbols()).toBeUndefined();
      expect(elf.section('.gopclntab')).toBeDefined();
      expect(elf.section('.go.buildinfo')).toBeDefined();
    });
    expect(await readGoBinaryInfo(stripped)).toEqual({
      goVersion,
      modulePath: 'nemutator.io/fixtures/hotloop',
      mainPath: 'nemutator.io/fixtures/hotloop',
      stripped: true,
      hasPclntab: true,
    });
  });

  it('says a C program is not Go', async () => {
    expect(await readGoBinaryInfo('/bin/ls')).toBeUndefined();
  });
});

describe('hotloop: main.hotFunction with main.inlinedAdd inlined', () => {
  let normal: string;
  let stripped: string;
  let hot: { entry: number; end: number };
  let fromStripped: GoSymbolizer;
  let fromNormal: GoSymbolizer;

  beforeAll(async () => {
    [normal, stripped] = await Promise.all([buildGo(HOTLOOP), buildGo(HOTLOOP, { stripped: true })]);
    const symbols = nm(normal);
    const entry = symbols.get('main.hotFunction');
    if (entry === undefined) throw new Error('go tool nm has no main.hotFunction');
    // The function ends where the next text symbol starts.
    const end = Math.min(...[...symbols.values()].filter((a) => a > entry));
    hot = { entry, end };
    [fromStripped, fromNormal] = await Promise.all([GoSymbolizer.open(stripped), GoSymbolizer.open(normal)]);
  }, 300_000);

  it('names main.hotFunction at its go tool nm address, from the stripped build', () => {
    const [frame] = fromStripped.symbolize(hot.entry);
    expect(frame).toMatchObject({ function: 'main.hotFunction', file: 'nemutator.io/fixtures/hotloop/main.go', inlined: false });
    expect(fromStripped.symbolize(hot.entry - 1)[0]?.function).not.toBe('main.hotFunction');
  });

  it('agrees with go tool addr2line on every pc of main.hotFunction', () => {
    const pcs = Array.from({ length: hot.end - hot.entry }, (_, i) => hot.entry + i);
    const truth = addr2line(normal, pcs);
    pcs.forEach((pc, i) => {
      const frames = fromStripped.symbolize(pc);
      const want = truth[i];
      expect(frames.length, `pc 0x${pc.toString(16)}`).toBeGreaterThan(0);
      // addr2line: the physical function, with the innermost file:line; ":-1" for the padding
      // after the last instruction, which the runtime (and so the symbolizer) calls "?":0.
      const got = { function: frames.at(-1)?.function, file: frames[0]?.file, line: frames[0]?.line };
      const runtimeWant = want?.line === -1 ? { ...want, file: '?', line: 0 } : want;
      expect(got, `pc 0x${pc.toString(16)}`).toEqual(runtimeWant);
      expect(fromNormal.symbolize(pc)).toEqual(frames);
    });
  });

  it('shows main.inlinedAdd as its own inlined frame above main.hotFunction, each at its line', async () => {
    const main = `${HOTLOOP}main.go`;
    const bodyLine = await sourceLine(main, /return \(\(acc\^i\)\*0x9E3779B97F4A7C15 \^ acc>>29\) \* 0xBF58476D1CE4E5B9/);
    const callLine = await sourceLine(main, /acc = inlinedAdd\(acc, uint64\(i\)\)/);
    const inlined = Array.from({ length: hot.end - hot.entry }, (_, i) => fromStripped.symbolize(hot.entry + i)).filter((f) => f.length > 1);
    expect(inlined.length).toBeGreaterThan(0);
    for (const frames of inlined) {
      expect(frames).toEqual<GoFrame[]>([
        { function: 'main.inlinedAdd', file: 'nemutator.io/fixtures/hotloop/main.go', line: bodyLine, inlined: true },
        { function: 'main.hotFunction', file: 'nemutator.io/fixtures/hotloop/main.go', line: callLine, inlined: false },
      ]);
    }
  });

  it('maps a running process address back to the binary through /proc/<pid>/maps', async () => {
    const child = spawn(stripped, ['-seconds', '30'], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout.once('data', () => resolve());
        child.once('error', reject);
      });
      const maps = parseProcMaps(await readFile(`/proc/${child.pid}/maps`, 'utf8'));
      const mapping = findMapping(maps, hot.entry);
      expect(mapping?.path).toBe(stripped);
      expect(mapping?.perms).toMatch(/^r-x/);
      const elf = await ElfFile.open(stripped);
      try {
        const vaddr = runtimeAddressToVaddr(mapping!, hot.entry, elf);
        expect(vaddr).toBe(BigInt(hot.entry)); // Go on amd64 links at fixed addresses
        expect(fromStripped.symbolize(vaddr!)[0]?.function).toBe('main.hotFunction');
      } finally {
        await elf.close();
      }
    } finally {
      child.kill('SIGTERM');
    }
  });
});

interface RuntimeFrame extends GoFrame {
  pc: number;
}

describe('inline fixture: frames equal runtime.CallersFrames', () => {
  for (const stripped of [false, true]) {
    it(`on the ${stripped ? 'stripped (-s -w)' : 'normal'} build`, async () => {
      const binary = await buildGo(INLINE, { stripped });
      const { stacks } = JSON.parse(execFileSync(binary, { encoding: 'utf8' })) as { stacks: RuntimeFrame[][] };
      const symbolizer = await GoSymbolizer.open(binary);
      let inlinedFrames = 0;
      for (const stack of stacks) {
        for (let i = 0; i < stack.length; i++) {
          // Frames from i up to the next physical (non-inlined) frame share one pc lookup.
          let j = i;
          while (stack[j]?.inlined === true) j++;
          const want = stack.slice(i, j + 1).map(({ pc: _pc, ...f }) => f);
          expect(symbolizer.symbolize(stack[i]!.pc), `pc 0x${stack[i]!.pc.toString(16)} (${stack[i]!.function})`).toEqual(want);
          if (stack[i]!.inlined) inlinedFrames++;
        }
      }
      // leaf and middle inlined into outer, bump into viaMethod.
      expect(inlinedFrames).toBeGreaterThanOrEqual(3);
      expect(stacks[0]?.map((f) => f.function).slice(0, 4)).toEqual(['main.capture', 'main.leaf', 'main.middle', 'main.outer']);
    }, 300_000);
  }
});
