/**
 * The Go runtime's own symbol table, `.gopclntab`: kept by `-ldflags='-s -w'` because the
 * runtime needs it for tracebacks and the GC. Layout of Go 1.18 and later (runtime/symtab.go):
 *
 *   pcHeader { magic u32; pad u8 ×2; minLC u8; ptrSize u8; nfunc, nfiles, textStart,
 *              funcnameOffset, cuOffset, filetabOffset, pctabOffset, pclnOffset: uintptr }
 *   funcnametab · cutab (u32 per CU file) · filetab · pctab · pclntable
 *   pclntable starts with functab: (nfunc + 1) × { entryoff u32, funcoff u32 }
 *   _func { entryoff u32, nameoff i32, args i32, deferreturn u32, pcsp u32, pcfile u32,
 *           pcln u32, npcdata u32, cuOffset u32, [startLine i32 — 1.20+], funcID u8,
 *           flag u8, pad u8, nfuncdata u8 } pcdata[npcdata] u32, funcdata[nfuncdata] u32
 *
 * funcdata entries are offsets from moduledata.gofunc (`go.func.*`), ^0 when absent.
 */
import { NemuError } from '#common/errors.js';

import { AgentErrorCodes } from '../../errors.ts';
import { type DecodedPcValueTable, decodePcValueTableCompact, lookupDecoded } from './pcvalue.ts';

/** Stable code of errors about a Go symbol table that cannot be used. */

export const PCLNTAB_MAGIC_GO12 = 0xfffffffb;
export const PCLNTAB_MAGIC_GO116 = 0xfffffffa;
export const PCLNTAB_MAGIC_GO118 = 0xfffffff0;
export const PCLNTAB_MAGIC_GO120 = 0xfffffff1;

export const PCDATA_INL_TREE_INDEX = 2;
export const FUNCDATA_INL_TREE = 3;

/** Layout generation: 1.18 covers Go 1.18–1.19, 1.20 covers Go 1.20 onwards. */
export type PclntabFormat = '1.18' | '1.20';

const HEADER_SIZE = 72;
/** Decoded pc-value tables kept (three per function at most): bounds a long-lived agent. */
const TABLE_CACHE_LIMIT = 60_000;

/** Which Go releases wrote a pclntab with this magic; undefined when it is no pclntab magic. */
export function pclntabMagicGoVersions(magic: number): string | undefined {
  switch (magic) {
    case PCLNTAB_MAGIC_GO12:
      return 'go1.2–go1.15';
    case PCLNTAB_MAGIC_GO116:
      return 'go1.16–go1.17';
    case PCLNTAB_MAGIC_GO118:
      return 'go1.18–go1.19';
    case PCLNTAB_MAGIC_GO120:
      return 'go1.20+';
    default:
      return undefined;
  }
}

/** Plausibility of a pcHeader at buf[off]: used to find a pclntab whose section name is gone. */
export function looksLikePcHeader(buf: Uint8Array, off: number): boolean {
  if (off + HEADER_SIZE > buf.length) return false;
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const magic = b.readUInt32LE(off);
  if (pclntabMagicGoVersions(magic) === undefined) return false;
  const minLC = b[off + 6] ?? 0;
  const ptrSize = b[off + 7] ?? 0;
  return b[off + 4] === 0 && b[off + 5] === 0 && (minLC === 1 || minLC === 2 || minLC === 4) && (ptrSize === 4 || ptrSize === 8);
}

/** The pcHeader's fields. */
export interface PcHeaderSummary {
  format: PclntabFormat;
  magic: number;
  minLC: number;
  nfunc: number;
  nfiles: number;
  /** 0 when the linker left it to moduledata.text (Go 1.26 does). */
  textStart: number;
  funcnameOffset: number;
  cuOffset: number;
  filetabOffset: number;
  pctabOffset: number;
  pclnOffset: number;
}

/** Checks the header and reads what finding moduledata needs; an unsupported table throws. */
export function readPcHeader(data: Buffer, where = '<pclntab>'): PcHeaderSummary {
  const error = (what: string): NemuError => new NemuError(AgentErrorCodes.GO_PCLNTAB, `${where}: ${what}`, { status: 422 });
  if (data.length < HEADER_SIZE) throw error(`pclntab is ${data.length} bytes, shorter than its header`);
  const magic = data.readUInt32LE(0);
  const versions = pclntabMagicGoVersions(magic);
  if (versions === undefined) {
    throw error(`no pclntab magic (0x${magic.toString(16)}); the binary is not a Go program or is corrupt`);
  }
  if (magic !== PCLNTAB_MAGIC_GO118 && magic !== PCLNTAB_MAGIC_GO120) {
    throw error(`pclntab written by ${versions} is not supported; rebuild the program with Go 1.18 or later`);
  }
  if (data[7] !== 8) throw error(`pointer size ${data[7] ?? 0}: only 64-bit Go binaries are supported`);
  const word = (i: number): number => {
    const v = data.readBigUInt64LE(8 + i * 8);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw error(`header field ${i} out of range; the pclntab is corrupt`);
    return Number(v);
  };
  return {
    format: magic === PCLNTAB_MAGIC_GO118 ? '1.18' : '1.20',
    magic,
    minLC: data[6] ?? 0,
    nfunc: word(0),
    nfiles: word(1),
    textStart: word(2),
    funcnameOffset: word(3),
    cuOffset: word(4),
    filetabOffset: word(5),
    pctabOffset: word(6),
    pclnOffset: word(7),
  };
}

/** One function of the table. Offsets are into the pclntab's sub-tables. */
export interface GoFunc {
  index: number;
  /** Virtual address of the first instruction. */
  entry: number;
  /** Virtual address just past the function (the next function's entry). */
  end: number;
  nameOff: number;
  pcfile: number;
  pcln: number;
  npcdata: number;
  cuOffset: number;
  funcID: number;
  nfuncdata: number;
  /** Offset of pcdata[0] in the pclntable. */
  pcdataAt: number;
}

export class Pclntab {
  readonly format: PclntabFormat;
  readonly magic: number;
  /** Instruction quantum: pc deltas are in units of this many bytes. */
  readonly minLC: number;
  readonly ptrSize: number;
  readonly nfunc: number;
  readonly nfiles: number;
  /** Virtual address that function entry offsets are relative to (moduledata.text). */
  readonly textStart: number;
  /** Offset of funcnametab from the pcHeader (moduledata.funcnametab points there). */
  readonly funcnameOffset: number;

  private readonly funcnametab: Buffer;
  private readonly cutab: Buffer;
  private readonly filetab: Buffer;
  private readonly pctab: Buffer;
  private readonly pclntable: Buffer;
  /** entryoff of functab[i], i ∈ [0, nfunc]; the last one is the end of the text. */
  private readonly entryOffs: Uint32Array;
  private readonly funcOffs: Uint32Array;
  private readonly fixedFuncSize: number;
  private readonly funcIDAt: number;
  private readonly names = new Map<number, string>();
  private readonly files = new Map<number, string>();
  private readonly funcs: (GoFunc | undefined)[] = [];
  private readonly tables = new Map<number, DecodedPcValueTable>();

  /**
   * `data` starts at the pcHeader; `where` names the binary in error messages. `textStart`
   * overrides the header's, which recent releases leave 0 (the table then carries no
   * relocation): pass moduledata.text.
   */
  constructor(
    data: Buffer,
    private readonly where = '<pclntab>',
    textStart?: number,
  ) {
    const h = readPcHeader(data, where);
    this.format = h.format;
    this.magic = h.magic;
    this.minLC = h.minLC;
    this.ptrSize = 8;
    this.nfunc = h.nfunc;
    this.nfiles = h.nfiles;
    this.textStart = textStart ?? h.textStart;
    this.funcnameOffset = h.funcnameOffset;
    const { funcnameOffset, cuOffset, filetabOffset, pctabOffset, pclnOffset } = h;
    for (const [name, off] of [
      ['funcnametab', funcnameOffset],
      ['cutab', cuOffset],
      ['filetab', filetabOffset],
      ['pctab', pctabOffset],
      ['pclntable', pclnOffset],
    ] as const) {
      if (off < HEADER_SIZE || off > data.length) throw this.error(`${name} offset ${off} lies outside the ${data.length}-byte pclntab`);
    }
    this.funcnametab = data.subarray(funcnameOffset, cuOffset);
    this.cutab = data.subarray(cuOffset, filetabOffset);
    this.filetab = data.subarray(filetabOffset, pctabOffset);
    this.pctab = data.subarray(pctabOffset, pclnOffset);
    this.pclntable = data.subarray(pclnOffset);
    if ((this.nfunc + 1) * 8 > this.pclntable.length) {
      throw this.error(`function table of ${this.nfunc} functions does not fit in the pclntab; the file is truncated`);
    }
    this.entryOffs = new Uint32Array(this.nfunc + 1);
    this.funcOffs = new Uint32Array(this.nfunc + 1);
    for (let i = 0; i <= this.nfunc; i++) {
      this.entryOffs[i] = this.pclntable.readUInt32LE(i * 8);
      this.funcOffs[i] = this.pclntable.readUInt32LE(i * 8 + 4);
    }
    // Go 1.20 inserted startLine (i32) before funcID.
    this.funcIDAt = this.format === '1.18' ? 36 : 40;
    this.fixedFuncSize = this.funcIDAt + 4;
  }

  private error(what: string): NemuError {
    return new NemuError(AgentErrorCodes.GO_PCLNTAB, `${this.where}: ${what}`, { status: 422 });
  }

  /** [start, end) of the text the table covers. */
  get textRange(): { start: number; end: number } {
    return { start: this.textStart + (this.entryOffs[0] ?? 0), end: this.textStart + (this.entryOffs[this.nfunc] ?? 0) };
  }

  /** Index of the function containing pc, or -1. Binary search over the entry offsets. */
  funcIndex(pc: number): number {
    const off = pc - this.textStart;
    const offs = this.entryOffs;
    if (this.nfunc === 0 || off < (offs[0] ?? 0) || off >= (offs[this.nfunc] ?? 0)) return -1;
    let lo = 0;
    let hi = this.nfunc - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if ((offs[mid] ?? 0) <= off) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** The function at an index of the table; read once, then kept (profiles revisit functions). */
  func(index: number): GoFunc {
    let f = this.funcs[index];
    if (f === undefined) {
      f = this.readFunc(index);
      this.funcs[index] = f;
    }
    return f;
  }

  private readFunc(index: number): GoFunc {
    if (index < 0 || index >= this.nfunc) throw this.error(`function index ${index} out of range`);
    const at = this.funcOffs[index] ?? 0;
    const t = this.pclntable;
    if (at + this.fixedFuncSize > t.length) throw this.error(`_func of function ${index} lies outside the pclntab`);
    return {
      index,
      entry: this.textStart + t.readUInt32LE(at),
      end: this.textStart + (this.entryOffs[index + 1] ?? 0),
      nameOff: t.readInt32LE(at + 4),
      pcfile: t.readUInt32LE(at + 20),
      pcln: t.readUInt32LE(at + 24),
      npcdata: t.readUInt32LE(at + 28),
      cuOffset: t.readUInt32LE(at + 32),
      funcID: t[at + this.funcIDAt] ?? 0,
      nfuncdata: t[at + this.funcIDAt + 3] ?? 0,
      pcdataAt: at + this.fixedFuncSize,
    };
  }

  /** Name at an offset into funcnametab (a NUL-terminated string), decoded once. */
  name(nameOff: number): string {
    let s = this.names.get(nameOff);
    if (s === undefined) {
      if (nameOff < 0 || nameOff >= this.funcnametab.length) return '';
      const end = this.funcnametab.indexOf(0, nameOff);
      s = this.funcnametab.toString('utf8', nameOff, end < 0 ? this.funcnametab.length : end);
      this.names.set(nameOff, s);
    }
    return s;
  }

  /** Offset into pctab of the function's i-th pcdata table; 0 when it has none. */
  pcdataTable(f: GoFunc, i: number): number {
    if (i >= f.npcdata) return 0;
    return this.pclntable.readUInt32LE(f.pcdataAt + i * 4);
  }

  /** Offset from gofunc of the function's i-th funcdata, or undefined when absent. */
  funcdataOffset(f: GoFunc, i: number): number | undefined {
    if (i >= f.nfuncdata) return undefined;
    const off = this.pclntable.readUInt32LE(f.pcdataAt + f.npcdata * 4 + i * 4);
    return off === 0xffffffff ? undefined : off;
  }

  /**
   * Value of a pc-value table at pc, -1 when unknown. A table is decoded on first use, so
   * later lookups are binary searches instead of walks from the entry (profiles come back to
   * the same big functions over and over).
   */
  pcValue(f: GoFunc, tableOff: number, pc: number): number {
    if (tableOff === 0 || pc < f.entry) return -1;
    let t = this.tables.get(tableOff);
    if (t === undefined) {
      if (this.tables.size >= TABLE_CACHE_LIMIT) this.tables.clear();
      t = decodePcValueTableCompact(this.pctab, tableOff, this.minLC);
      this.tables.set(tableOff, t);
    }
    return lookupDecoded(t, pc - f.entry);
  }

  /** File and line of pc within f (runtime.funcline1): "?" and 0 when the table has no answer. */
  fileLine(f: GoFunc, pc: number): { file: string; line: number } {
    const fileno = this.pcValue(f, f.pcfile, pc);
    const line = this.pcValue(f, f.pcln, pc);
    if (fileno < 0 || line < 0) return { file: '?', line: 0 };
    return { file: this.fileName(f.cuOffset + fileno), line };
  }

  /** File of a compilation unit's file index (runtime.funcfile). */
  private fileName(cuIndex: number): string {
    let s = this.files.get(cuIndex);
    if (s === undefined) {
      s = '?';
      if ((cuIndex + 1) * 4 <= this.cutab.length) {
        const off = this.cutab.readUInt32LE(cuIndex * 4);
        if (off !== 0xffffffff && off < this.filetab.length) {
          const end = this.filetab.indexOf(0, off);
          s = this.filetab.toString('utf8', off, end < 0 ? this.filetab.length : end);
        }
      }
      this.files.set(cuIndex, s);
    }
    return s;
  }

  /**
   * Largest funcID in the table. FuncIDWrapper is the last ID of the runtime's enumeration in
   * every release (its number moved from 21 to 22 to 23 as IDs were added before it), and
   * every program has autogenerated wrappers (type equality functions at least).
   */
  maxFuncID(): number {
    let max = 0;
    for (let i = 0; i < this.nfunc; i++) {
      const at = this.funcOffs[i] ?? 0;
      const id = this.pclntable[at + this.funcIDAt] ?? 0;
      if (id > max) max = id;
    }
    return max;
  }
}
