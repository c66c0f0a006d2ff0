/**
 * Finding Go's tables in an ELF file, with or without section names and symbols:
 * - the pclntab: `.gopclntab` (`.data.rel.ro.gopclntab` in a PIE), else the `runtime.pclntab`
 *   symbol, else a scan of the read-only segments for a plausible pcHeader;
 * - `go.func.*` (moduledata.gofunc), the base of funcdata offsets, where the inline trees live:
 *   the `go:func.*`/`go.func.*` symbol, else the runtime's moduledata, found by its first word
 *   (a pointer to the pcHeader) in the data segments.
 */
import { type ElfFile, PT_LOAD } from '../elf/elf-file.ts';
import { looksLikePcHeader, type PcHeaderSummary } from './pclntab.ts';

const PF_X = 1;
const PF_W = 2;

export interface PclntabLocation {
  /** Virtual address of the pcHeader. */
  addr: number;
  data: Buffer;
  /** How it was found: a section name, `symbol`, or `scan`. */
  via: string;
}

const PCLNTAB_SECTIONS = ['.gopclntab', '.data.rel.ro.gopclntab'];

export async function locatePclntab(elf: ElfFile): Promise<PclntabLocation | undefined> {
  for (const name of PCLNTAB_SECTIONS) {
    const s = elf.section(name);
    if (s !== undefined && s.size >= 8) {
      const data = await elf.readSection(s);
      if (looksLikePcHeader(data, 0)) return { addr: s.addr, data, via: name };
    }
  }
  const symbols = await elf.symbols();
  const sym = symbols?.find((s) => s.name === 'runtime.pclntab' || s.name === 'runtime.pcheader');
  if (sym !== undefined) {
    const end = symbols?.find((s) => s.name === 'runtime.epclntab')?.value;
    const data = await readToSegmentEnd(elf, sym.value, end);
    if (data !== undefined && looksLikePcHeader(data, 0)) return { addr: sym.value, data, via: 'symbol' };
  }
  // Scanning reads every read-only segment: only worth it when section names are gone, or
  // when the file is Go by another mark — not for every C++ binary of a node.
  const named = elf.sections.some((s) => s.name !== '');
  const goMark = elf.sections.some((s) => GO_MARK_SECTIONS.includes(s.name));
  return !named || goMark ? scanForPclntab(elf) : undefined;
}

const GO_MARK_SECTIONS = ['.go.buildinfo', '.note.go.buildid', '.gosymtab', '.data.rel.ro.gosymtab', '.go.module', '.go.fipsinfo'];

/** Looks for a pcHeader (8-aligned, plausible header) in the segments that are not writable code. */
async function scanForPclntab(elf: ElfFile): Promise<PclntabLocation | undefined> {
  // Read-only data first (.rodata holds it in a normal executable), then relro data (PIE).
  const segments = elf.loadSegments.filter((s) => (s.flags & PF_X) === 0 && s.filesz > 0).sort((a, b) => (a.flags & PF_W) - (b.flags & PF_W));
  const magics = [Buffer.from([0xf1, 0xff, 0xff, 0xff, 0, 0]), Buffer.from([0xf0, 0xff, 0xff, 0xff, 0, 0])];
  for (const seg of segments) {
    const data = await elf.read(seg.offset, seg.filesz, 'a loadable segment');
    for (const magic of magics) {
      for (let i = data.indexOf(magic); i >= 0; i = data.indexOf(magic, i + 1)) {
        if ((seg.vaddr + i) % 8 === 0 && looksLikePcHeader(data, i) && headerFits(data, i)) {
          return { addr: seg.vaddr + i, data: data.subarray(i), via: 'scan' };
        }
      }
    }
  }
  return undefined;
}

/** The table offsets of a candidate header increase and stay inside the data. */
function headerFits(data: Buffer, at: number): boolean {
  const nfunc = Number(data.readBigUInt64LE(at + 8));
  let prev = 72;
  for (let i = 3; i <= 7; i++) {
    const off = Number(data.readBigUInt64LE(at + 8 + i * 8));
    if (off < prev || at + off > data.length) return false;
    prev = off;
  }
  return nfunc > 0 && at + prev + (nfunc + 1) * 8 <= data.length;
}

async function readToSegmentEnd(elf: ElfFile, vaddr: number, end?: number): Promise<Buffer | undefined> {
  for (const seg of elf.segments) {
    if (seg.type === PT_LOAD && vaddr >= seg.vaddr && vaddr < seg.vaddr + seg.filesz) {
      const limit = end !== undefined && end > vaddr ? Math.min(end, seg.vaddr + seg.filesz) : seg.vaddr + seg.filesz;
      return elf.readVaddr(vaddr, limit - vaddr);
    }
  }
  return undefined;
}

// moduledata, as 8-byte words: pcHeader; funcnametab, cutab, filetab, pctab, pclntable, ftab
// (slices, 3 words each); findfunctab; minpc; maxpc; text (word 22); etext; noptrdata…; then
// types, etypes, rodata, gofunc — gofunc is word 38 up to Go 1.19 and word 40 from Go 1.20
// (covctrs, ecovctrs were added before end).
const MD_FUNCNAMETAB = 1;
const MD_TEXT = 22;
const MD_WORDS = 48;

export interface ModuledataFacts {
  /** Virtual address of the moduledata itself. */
  addr: number;
  /** moduledata.text: the base of function entry offsets. */
  text: number;
  /** moduledata.gofunc (`go.func.*`), when the layout could be confirmed. */
  gofunc?: number;
}

/**
 * The runtime's moduledata for this pclntab, found by its first words (pointers to the
 * pcHeader and to funcnametab) in the writable segments; the Go linker writes these pointers
 * in the file even for a PIE.
 */
export async function locateModuledata(elf: ElfFile, pclntabAddr: number, header: PcHeaderSummary): Promise<ModuledataFacts | undefined> {
  const expected = header.format === '1.18' ? 38 : 40;
  // Expected slot first, then the neighbourhood from the top: a release that moved gofunc
  // still keeps rodata right before it.
  const slots = [expected, ...Array.from({ length: 12 }, (_, k) => 43 - k).filter((i) => i !== expected)];
  const first = Buffer.alloc(8);
  first.writeBigUInt64LE(BigInt(pclntabAddr));
  for (const seg of elf.loadSegments.filter((s) => (s.flags & PF_W) !== 0 && s.filesz > 0)) {
    const data = await elf.read(seg.offset, seg.filesz, 'a data segment');
    for (let at = data.indexOf(first); at >= 0 && at + MD_WORDS * 8 <= data.length; at = data.indexOf(first, at + 1)) {
      if ((seg.vaddr + at) % 8 !== 0) continue;
      const word = (i: number): number => Number(data.readBigUInt64LE(at + i * 8));
      if (word(MD_FUNCNAMETAB) !== pclntabAddr + header.funcnameOffset) continue;
      const text = word(MD_TEXT);
      if (header.textStart !== 0 ? text !== header.textStart : !isExecutable(elf, text)) continue;
      const facts: ModuledataFacts = { addr: seg.vaddr + at, text };
      const slot = slots.find((i) => plausibleGoFunc(elf, word, i));
      if (slot !== undefined) facts.gofunc = word(slot);
      return facts;
    }
  }
  return undefined;
}

/** `go:func.*` (Go 1.20+) or `go.func.*` from .symtab, when the binary has one. */
export async function goFuncSymbol(elf: ElfFile): Promise<number | undefined> {
  const symbols = await elf.symbols();
  return symbols?.find((s) => s.name === 'go:func.*' || s.name === 'go.func.*')?.value;
}

/**
 * Whether word i of a moduledata candidate is gofunc: the three words before it are types,
 * etypes and rodata; types and rodata are both the start of Go's read-only data (which an
 * external linker may place after C's, so not necessarily the .rodata section's start).
 */
function plausibleGoFunc(elf: ElfFile, word: (i: number) => number, i: number): boolean {
  const [types, etypes, rodata, gofunc] = [word(i - 3), word(i - 2), word(i - 1), word(i)];
  const section = elf.section('.rodata');
  const inRodata = section !== undefined && rodata >= section.addr && rodata < section.addr + section.size;
  return (
    ((types === rodata && etypes > types) || inRodata) && gofunc >= rodata && elf.vaddrToOffset(rodata) !== undefined && elf.vaddrToOffset(gofunc) !== undefined
  );
}

function isExecutable(elf: ElfFile, vaddr: number): boolean {
  return elf.loadSegments.some((s) => (s.flags & PF_X) !== 0 && vaddr >= s.vaddr && vaddr < s.vaddr + s.memsz);
}
