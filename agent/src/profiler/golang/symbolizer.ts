/**
 * pc → frames for a Go binary, from `.gopclntab` alone: works on binaries built with
 * `-ldflags='-s -w'` (no .symtab, no DWARF). Inlined calls are expanded innermost first, the
 * way runtime.CallersFrames reports them:
 *
 *   frame = function of pc; ix = pcdata[InlTreeIndex](pc)
 *   while ix >= 0: the inlined callee inlTree[ix] is a frame (file:line of pc),
 *                  pc = entry + inlTree[ix].parentPc (an instruction at the call site)
 *   the physical function is the last frame (file:line of that pc).
 *
 * inlinedCall layout — Go 1.18/1.19: { parent i16, funcID u8, _ u8, file i32, line i32,
 * nameOff i32, parentPc i32 } (20 bytes); Go 1.20+: { funcID u8, _ [3]u8, nameOff i32,
 * parentPc i32, startLine i32 } (16 bytes). File and line always come from pcfile/pcln.
 */
import { NemuError } from '#common/errors.js';

import { AgentErrorCodes } from '../../errors.ts';
import { type ElfFile, SHT_NOBITS, withElfFile } from '../elf/elf-file.ts';
import { goFuncSymbol, locateModuledata, locatePclntab } from './locate.ts';
import { FUNCDATA_INL_TREE, type GoFunc, PCDATA_INL_TREE_INDEX, Pclntab, type PclntabFormat, readPcHeader } from './pclntab.ts';

export interface GoFrame {
  function: string;
  file: string;
  line: number;
  /** True for a call the compiler inlined into the frame below it. */
  inlined: boolean;
}

/** Deeper inline chains than this mean a corrupt table (the compiler's budget keeps them short). */
const MAX_INLINE_DEPTH = 100;
/** Cache bound: a profile has a few thousand distinct pcs; a long-lived agent must not grow forever. */
const CACHE_LIMIT = 200_000;

/** The bytes from go.func.* on, where funcdata (inline trees among them) lives. */
interface GoFuncData {
  addr: number;
  bytes: Buffer;
}

export class GoSymbolizer {
  private readonly cache = new Map<number, readonly GoFrame[]>();
  private readonly inlSize: number;
  private readonly wrapperFuncID: number;

  private constructor(
    private readonly table: Pclntab,
    private readonly goFunc: GoFuncData | undefined,
  ) {
    this.inlSize = table.format === '1.18' ? 20 : 16;
    this.wrapperFuncID = table.maxFuncID();
  }

  static open(path: string): Promise<GoSymbolizer> {
    return withElfFile(path, (elf) => GoSymbolizer.fromElf(elf));
  }

  static async fromElf(elf: ElfFile): Promise<GoSymbolizer> {
    const loc = await locatePclntab(elf);
    if (loc === undefined) {
      throw new NemuError(AgentErrorCodes.GO_PCLNTAB, `${elf.path}: no Go symbol table (.gopclntab); the binary is not a Go program`, {
        status: 422,
      });
    }
    const header = readPcHeader(loc.data, elf.path);
    const md = await locateModuledata(elf, loc.addr, header);
    let textStart = header.textStart;
    if (textStart === 0) {
      textStart = md?.text ?? elf.section('.text')?.addr ?? 0;
      if (textStart === 0) {
        throw new NemuError(AgentErrorCodes.GO_PCLNTAB, `${elf.path}: cannot find the start of the Go text (no moduledata, no .text section)`, {
          status: 422,
        });
      }
    }
    const table = new Pclntab(loc.data, elf.path, textStart);
    const goFuncAddr = (await goFuncSymbol(elf)) ?? md?.gofunc;
    let goFunc: GoFuncData | undefined;
    if (goFuncAddr !== undefined) {
      // To the end of the section holding go.func.* (.rodata, or .gopclntab lately), else of its segment.
      const section = elf.sections.find((s) => s.addr <= goFuncAddr && goFuncAddr < s.addr + s.size && s.type !== SHT_NOBITS);
      const limit = section !== undefined ? section.addr + section.size : Number.MAX_SAFE_INTEGER;
      const bytes = await elf.readVaddr(goFuncAddr, limit - goFuncAddr);
      if (bytes !== undefined) goFunc = { addr: goFuncAddr, bytes };
    }
    return new GoSymbolizer(table, goFunc);
  }

  /** Base of function entry offsets: the start of the Go text (moduledata.text). */
  get textStart(): number {
    return this.table.textStart;
  }

  /** pclntab layout generation of the binary. */
  get format(): PclntabFormat {
    return this.table.format;
  }

  /** False when go.func.* could not be found: frames are then never expanded into inlined calls. */
  get expandsInlinedCalls(): boolean {
    return this.goFunc !== undefined;
  }

  /**
   * Frames at pc, a virtual address in the ELF's address space (not a file offset; see
   * runtimeAddressToVaddr for a process address), innermost first; [] when pc is not in Go
   * code. For a return address taken from a stack (every frame but the leaf), pass pc - 1 so
   * the call instruction is looked up, as the runtime does.
   */
  symbolize(pc: bigint | number): GoFrame[] {
    const n = typeof pc === 'bigint' ? (pc > BigInt(Number.MAX_SAFE_INTEGER) || pc < 0n ? -1 : Number(pc)) : pc;
    let frames = this.cache.get(n);
    if (frames === undefined) {
      frames = n < 0 ? [] : this.expand(n);
      if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
      this.cache.set(n, frames);
    }
    return frames.slice();
  }

  private expand(pc: number): readonly GoFrame[] {
    const index = this.table.funcIndex(pc);
    if (index < 0) return [];
    const f = this.table.func(index);
    const frames: GoFrame[] = [];
    const inl = this.inlineTree(f);
    let at = pc;
    for (let depth = 0; ; depth++) {
      const ix = inl === undefined || depth >= MAX_INLINE_DEPTH ? -1 : this.table.pcValue(f, this.table.pcdataTable(f, PCDATA_INL_TREE_INDEX), at);
      const call = ix >= 0 && inl !== undefined ? this.inlinedCall(inl, ix) : undefined;
      const { file, line } = this.table.fileLine(f, at);
      if (call === undefined) {
        frames.push(Object.freeze({ function: this.printName(f.nameOff), file, line, inlined: false }));
        break;
      }
      // runtime.Callers leaves out inlined autogenerated wrappers (method value and
      // interface wrappers); so does pprof.
      if (call.funcID !== this.wrapperFuncID || this.wrapperFuncID === 0) {
        frames.push(Object.freeze({ function: this.printName(call.nameOff), file, line, inlined: true }));
      }
      at = f.entry + call.parentPc;
    }
    return Object.freeze(frames);
  }

  /** Offset of the function's inline tree in goFunc.bytes, if it has one. */
  private inlineTree(f: GoFunc): number | undefined {
    if (this.goFunc === undefined) return undefined;
    const off = this.table.funcdataOffset(f, FUNCDATA_INL_TREE);
    if (off === undefined || off >= this.goFunc.bytes.length) return undefined;
    return off;
  }

  private inlinedCall(tree: number, ix: number): { funcID: number; nameOff: number; parentPc: number } | undefined {
    const bytes = (this.goFunc as GoFuncData).bytes;
    const at = tree + ix * this.inlSize;
    if (at + this.inlSize > bytes.length) return undefined;
    return this.table.format === '1.18'
      ? { funcID: bytes[at + 2] ?? 0, nameOff: bytes.readInt32LE(at + 12), parentPc: bytes.readInt32LE(at + 16) }
      : { funcID: bytes[at] ?? 0, nameOff: bytes.readInt32LE(at + 4), parentPc: bytes.readInt32LE(at + 8) };
  }

  /**
   * Go 1.20+ runtimes print generic instantiations as `pkg.F[...]` (funcNameForPrint); Go
   * 1.18/1.19 CallersFrames gives the raw shape name (`pkg.F[go.shape.int_0]`).
   */
  private printName(nameOff: number): string {
    const name = this.table.name(nameOff);
    if (this.table.format === '1.18') return name;
    const i = name.indexOf('[');
    if (i < 0) return name;
    const j = name.lastIndexOf(']');
    return j <= i ? name : `${name.slice(0, i)}[...]${name.slice(j + 1)}`;
  }
}
