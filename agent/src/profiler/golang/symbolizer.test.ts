/**
 * The symbolizer on Go binaries built here byte by byte, one per pclntab layout (Go 1.18–1.19
 * and Go 1.20+, including a header without textStart as Go 1.26 writes it), with and without
 * .symtab. Real binaries are in test/profiler/; these pin the layout differences exactly.
 */
import { describe, expect, it } from 'vitest';

import { isNemuError } from '#common/errors.js';
import { buildElf, type FakeElfSpec, fakeSectionAddr } from '#test/harness/fake-elf.js';

import { ElfFile } from '../elf/elf-file.ts';
import { PCLNTAB_MAGIC_GO116, PCLNTAB_MAGIC_GO118, PCLNTAB_MAGIC_GO120, type PclntabFormat } from './pclntab.ts';
import { type GoFrame, GoSymbolizer } from './symbolizer.ts';

interface Run {
  length: number;
  file: number;
  line: number;
  inl: number;
}

interface FakeFunc {
  name: string;
  size: number;
  funcID?: number;
  runs: Run[];
  inlTree?: { name: string; parentPc: number; funcID?: number }[];
}

const WRAPPER = 21;
const FILES = ['/src/app/a.go', '/src/app/b.go'];

// main.outer inlines main.middle, which inlines main.leaf; a wrapper is inlined at 0x20.
//   [0x00,0x10) a.go:10          [0x10,0x18) b.go:20 leaf   [0x18,0x20) b.go:31 middle
//   [0x20,0x28) b.go:40 wrapper  [0x28,0x30) a.go:11        [0x30,0x40) a.go:12 (call site)
const FUNCS: FakeFunc[] = [
  {
    name: 'main.outer',
    size: 0x40,
    runs: [
      { length: 0x10, file: 0, line: 10, inl: -1 },
      { length: 0x08, file: 1, line: 20, inl: 0 },
      { length: 0x08, file: 1, line: 31, inl: 1 },
      { length: 0x08, file: 1, line: 40, inl: 2 },
      { length: 0x08, file: 0, line: 11, inl: -1 },
      { length: 0x10, file: 0, line: 12, inl: -1 },
    ],
    inlTree: [
      { name: 'main.leaf', parentPc: 0x18 },
      { name: 'main.middle', parentPc: 0x30 },
      { name: 'main.(*T).M-fm', parentPc: 0x30, funcID: WRAPPER },
    ],
  },
  { name: 'main.other', size: 0x20, runs: [{ length: 0x20, file: 1, line: 50, inl: -1 }] },
  { name: 'type:.eq.main.T', size: 0x10, funcID: WRAPPER, runs: [{ length: 0x10, file: 0, line: 1, inl: -1 }] },
];

const TEXT = 0x401000;

function varints(out: number[], ...vs: number[]): void {
  for (let u of vs) {
    u >>>= 0;
    while (u >= 0x80) {
      out.push((u & 0x7f) | 0x80);
      u >>>= 7;
    }
    out.push(u);
  }
}

/** A pc-value table of the runs' field, from value -1, as the linker encodes it. */
function pcTable(runs: Run[], field: 'file' | 'line' | 'inl'): number[] {
  const out: number[] = [];
  let prev = -1;
  let pending = 0;
  runs.forEach((r, i) => {
    pending += r.length;
    const next = runs[i + 1];
    if (next !== undefined && next[field] === r[field]) return; // merged with the next run
    const d = r[field] - prev;
    varints(out, d < 0 ? (-d << 1) - 1 : d << 1, pending);
    prev = r[field];
    pending = 0;
  });
  out.push(0);
  return out;
}

interface FakeGoOptions {
  format: PclntabFormat;
  symbols?: boolean;
  /** Write 0 in pcHeader.textStart (Go 1.26), leaving it to moduledata.text. */
  zeroTextStart?: boolean;
  magic?: number;
  /** No section header table: the pclntab is found by scanning for its header. */
  noSectionHeaders?: boolean;
}

function fakeGoBinary(opts: FakeGoOptions): Buffer {
  const names: number[] = [0];
  const nameOff = (s: string): number => {
    const off = names.length;
    names.push(...Buffer.from(`${s}\0`));
    return off;
  };
  const filetab: number[] = [];
  const cutab = FILES.map((f) => {
    const off = filetab.length;
    filetab.push(...Buffer.from(`${f}\0`));
    return off;
  });
  const pctab: number[] = [0];
  const table = (bytes: number[]): number => {
    const off = pctab.length;
    pctab.push(...bytes);
    return off;
  };
  const gofunc: number[] = [];
  const inlSize = opts.format === '1.18' ? 20 : 16;
  const fixed = opts.format === '1.18' ? 40 : 44;

  const funcs: Buffer[] = [];
  let entry = 0;
  const entries: number[] = [];
  for (const f of FUNCS) {
    entries.push(entry);
    const hasInl = f.inlTree !== undefined;
    const npcdata = hasInl ? 3 : 0;
    const nfuncdata = hasInl ? 4 : 0;
    const b = Buffer.alloc(fixed + npcdata * 4 + nfuncdata * 4);
    b.writeUInt32LE(entry, 0);
    b.writeInt32LE(nameOff(f.name), 4);
    b.writeUInt32LE(table(pcTable(f.runs, 'file')), 20);
    b.writeUInt32LE(table(pcTable(f.runs, 'line')), 24);
    b.writeUInt32LE(npcdata, 28);
    b.writeUInt32LE(0, 32); // cuOffset
    b[fixed - 4] = f.funcID ?? 0;
    b[fixed - 1] = nfuncdata;
    if (hasInl) {
      b.writeUInt32LE(table(pcTable(f.runs, 'inl')), fixed + 8); // pcdata[2]
      for (let i = 0; i < 3; i++) b.writeUInt32LE(0xffffffff, fixed + 12 + i * 4);
      b.writeUInt32LE(gofunc.length, fixed + 12 + 12); // funcdata[3]: the inline tree
      for (const call of f.inlTree ?? []) {
        const e = Buffer.alloc(inlSize);
        if (opts.format === '1.18') {
          e.writeInt16LE(-1, 0);
          e[2] = call.funcID ?? 0;
          e.writeInt32LE(nameOff(call.name), 12);
          e.writeInt32LE(call.parentPc, 16);
        } else {
          e[0] = call.funcID ?? 0;
          e.writeInt32LE(nameOff(call.name), 4);
          e.writeInt32LE(call.parentPc, 8);
        }
        gofunc.push(...e);
      }
    }
    funcs.push(b);
    entry += f.size;
  }
  entries.push(entry);

  const functab = Buffer.alloc(entries.length * 8);
  let funcOff = functab.length;
  entries.forEach((e, i) => {
    functab.writeUInt32LE(e, i * 8);
    functab.writeUInt32LE(i < funcs.length ? funcOff : 0, i * 8 + 4);
    funcOff += funcs[i]?.length ?? 0;
  });
  const pclntable = Buffer.concat([functab, ...funcs]);
  const parts = [Buffer.from(names), Buffer.alloc(cutab.length * 4), Buffer.from(filetab), Buffer.from(pctab), pclntable];
  cutab.forEach((off, i) => parts[1]?.writeUInt32LE(off, i * 4));
  const header = Buffer.alloc(72);
  header.writeUInt32LE(opts.magic ?? (opts.format === '1.18' ? PCLNTAB_MAGIC_GO118 : PCLNTAB_MAGIC_GO120), 0);
  header[6] = 1;
  header[7] = 8;
  header.writeBigUInt64LE(BigInt(FUNCS.length), 8);
  header.writeBigUInt64LE(BigInt(FILES.length), 16);
  header.writeBigUInt64LE(opts.zeroTextStart ? 0n : BigInt(TEXT), 24);
  let off = 72;
  parts.forEach((p, i) => {
    header.writeBigUInt64LE(BigInt(off), 32 + i * 8);
    off += p.length;
  });
  const pclntab = Buffer.concat([header, ...parts]);

  const rodata = Buffer.concat([Buffer.alloc(0x100, 0x11), Buffer.from(gofunc)]);
  const moduledata = Buffer.alloc(48 * 8);
  const spec: FakeElfSpec = {
    noSectionHeaders: opts.noSectionHeaders ?? false,
    segments: [
      { vaddr: TEXT, flags: 5, sections: [{ name: '.text', data: Buffer.alloc(entry, 0xcc) }] },
      {
        vaddr: 0x482000,
        flags: 4,
        sections: [
          { name: '.rodata', data: rodata },
          { name: '.gopclntab', data: pclntab },
        ],
      },
      { vaddr: 0x511000, flags: 6, sections: [{ name: '.noptrdata', data: moduledata }] },
    ],
  };
  const rodataAddr = fakeSectionAddr(spec, '.rodata');
  const pclntabAddr = fakeSectionAddr(spec, '.gopclntab');
  const word = (i: number, v: number): void => void moduledata.writeBigUInt64LE(BigInt(v), i * 8);
  word(0, pclntabAddr);
  word(1, pclntabAddr + Number(header.readBigUInt64LE(32)));
  word(22, TEXT);
  word(23, TEXT + entry);
  const g = opts.format === '1.18' ? 38 : 40;
  word(g - 3, rodataAddr); // types
  word(g - 2, rodataAddr + 0x100); // etypes
  word(g - 1, rodataAddr); // rodata
  word(g, rodataAddr + 0x100); // gofunc
  if (opts.symbols) {
    spec.symbols = [
      { name: opts.format === '1.18' ? 'go.func.*' : 'go:func.*', value: rodataAddr + 0x100, type: 1 },
      { name: 'main.outer', value: TEXT, size: 0x40 },
    ];
    // With .symtab the symbol is used: make the moduledata useless to prove it.
    moduledata.fill(0);
    word(0, pclntabAddr);
  }
  return buildElf(spec);
}

async function symbolizer(opts: FakeGoOptions): Promise<GoSymbolizer> {
  return GoSymbolizer.fromElf(await ElfFile.fromBuffer(fakeGoBinary(opts), `fake-go${opts.format}`));
}

const frame = (fn: string, file: number, line: number, inlined: boolean): GoFrame => ({
  function: fn,
  file: FILES[file] ?? '?',
  line,
  inlined,
});

describe.each([
  { format: '1.18' as const, label: 'Go 1.18–1.19 layout, stripped' },
  { format: '1.20' as const, label: 'Go 1.20+ layout, stripped' },
  { format: '1.18' as const, symbols: true, label: 'Go 1.18–1.19 layout with .symtab' },
  { format: '1.20' as const, symbols: true, label: 'Go 1.20+ layout with .symtab' },
  { format: '1.20' as const, zeroTextStart: true, label: 'Go 1.26 header without textStart' },
  { format: '1.18' as const, noSectionHeaders: true, label: 'Go 1.18–1.19 layout without section headers' },
  { format: '1.20' as const, noSectionHeaders: true, zeroTextStart: true, label: 'Go 1.26 layout without section headers' },
])('GoSymbolizer on a $label', (opts) => {
  it('names the function and line of a pc outside inlined code', async () => {
    const s = await symbolizer(opts);
    expect(s.format).toBe(opts.format);
    expect(s.textStart).toBe(TEXT);
    expect(s.expandsInlinedCalls).toBe(true);
    expect(s.symbolize(TEXT)).toEqual([frame('main.outer', 0, 10, false)]);
    expect(s.symbolize(BigInt(TEXT + 0x2f))).toEqual([frame('main.outer', 0, 11, false)]);
    expect(s.symbolize(TEXT + 0x40)).toEqual([frame('main.other', 1, 50, false)]);
  });

  it('expands inlined calls innermost first, each at its call site', async () => {
    const s = await symbolizer(opts);
    expect(s.symbolize(TEXT + 0x12)).toEqual([frame('main.leaf', 1, 20, true), frame('main.middle', 1, 31, true), frame('main.outer', 0, 12, false)]);
    expect(s.symbolize(TEXT + 0x18)).toEqual([frame('main.middle', 1, 31, true), frame('main.outer', 0, 12, false)]);
  });

  it('leaves out inlined autogenerated wrappers, as runtime.Callers does', async () => {
    const s = await symbolizer(opts);
    expect(s.symbolize(TEXT + 0x21)).toEqual([frame('main.outer', 0, 12, false)]);
    // A wrapper that is a real function stays: its pc must be attributed somewhere.
    expect(s.symbolize(TEXT + 0x60)).toEqual([frame('type:.eq.main.T', 0, 1, false)]);
  });

  it('answers [] outside the Go text', async () => {
    const s = await symbolizer(opts);
    expect(s.symbolize(TEXT - 1)).toEqual([]);
    expect(s.symbolize(TEXT + 0x70)).toEqual([]);
    expect(s.symbolize(-1)).toEqual([]);
    expect(s.symbolize(0xffffffffff600000n)).toEqual([]);
  });

  it('returns copies: a caller changing its array changes nothing for the next', async () => {
    const s = await symbolizer(opts);
    const first = s.symbolize(TEXT + 0x12);
    first.pop();
    expect(s.symbolize(TEXT + 0x12)).toHaveLength(3);
  });
});

describe('GoSymbolizer errors', () => {
  it('refuses a pclntab older than Go 1.18, saying which releases wrote it', async () => {
    const elf = await ElfFile.fromBuffer(fakeGoBinary({ format: '1.18', magic: PCLNTAB_MAGIC_GO116 }), 'old-go');
    try {
      await GoSymbolizer.fromElf(elf);
      expect.unreachable();
    } catch (err) {
      expect(isNemuError(err) && err.code).toBe('NEMU_ERR_GO_PCLNTAB');
      expect((err as Error).message).toMatch(/^old-go: pclntab written by go1\.16–go1\.17 is not supported; rebuild .* Go 1\.18/);
    }
  });

  it('refuses a binary without a Go symbol table', async () => {
    const elf = await ElfFile.fromBuffer(
      buildElf({ segments: [{ vaddr: 0x401000, flags: 5, sections: [{ name: '.text', data: Buffer.alloc(16) }] }] }),
      'c-program',
    );
    await expect(GoSymbolizer.fromElf(elf)).rejects.toMatchObject({ code: 'NEMU_ERR_GO_PCLNTAB', message: expect.stringMatching(/not a Go program/) });
  });
});
