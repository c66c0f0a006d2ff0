/**
 * Builds small, valid ELF64 little-endian images in memory, for tests of the readers: layouts
 * no toolchain here produces (an old Go's pointer-format build info, a binary without section
 * names) and exact control over every address.
 */
import { PT_LOAD, SHT_SYMTAB } from '#agent/profiler/elf/elf-file.js';

const SHT_PROGBITS = 1;
const SHT_STRTAB = 3;
const PAGE = 0x1000;

export interface FakeSectionSpec {
  name: string;
  data: Buffer;
  type?: number;
}

export interface FakeSegmentSpec {
  vaddr: number;
  /** PF_R = 4, PF_W = 2, PF_X = 1. */
  flags: number;
  /** Laid out back to back (16-byte aligned) from vaddr, in the file and in memory alike. */
  sections: FakeSectionSpec[];
}

export interface FakeSymbolSpec {
  name: string;
  value: number;
  size?: number;
  /** STT_FUNC = 2, STT_OBJECT = 1. */
  type?: number;
}

export interface FakeElfSpec {
  /** ET_EXEC (2) by default. */
  type?: number;
  segments: FakeSegmentSpec[];
  symbols?: FakeSymbolSpec[];
  /** Leave out the section header table (as `sstrip` does). */
  noSectionHeaders?: boolean;
}

interface Placed {
  name: string;
  type: number;
  flags: number;
  addr: number;
  offset: number;
  data: Buffer;
  link: number;
  entsize: number;
}

/** The address of a section as buildElf will place it. */
export function fakeSectionAddr(spec: FakeElfSpec, name: string): number {
  for (const seg of spec.segments) {
    let rel = 0;
    for (const s of seg.sections) {
      if (s.name === name) return seg.vaddr + rel;
      rel = align(rel + s.data.length, 16);
    }
  }
  throw new Error(`no section ${name}`);
}

export function buildElf(spec: FakeElfSpec): Buffer {
  const phnum = spec.segments.length;
  const placed: Placed[] = [];
  const phdrs: { flags: number; offset: number; vaddr: number; size: number }[] = [];
  let offset = align(64 + phnum * 56, PAGE);
  for (const seg of spec.segments) {
    // Same offset as vaddr modulo the page size, as a linker would lay it out.
    offset = align(offset, PAGE) + (seg.vaddr % PAGE);
    const start = offset;
    let rel = 0;
    for (const s of seg.sections) {
      placed.push({
        name: s.name,
        type: s.type ?? SHT_PROGBITS,
        flags: 2 | ((seg.flags & 2) !== 0 ? 1 : 0) | ((seg.flags & 1) !== 0 ? 4 : 0), // ALLOC, WRITE, EXECINSTR
        addr: seg.vaddr + rel,
        offset: start + rel,
        data: s.data,
        link: 0,
        entsize: 0,
      });
      rel = align(rel + s.data.length, 16);
    }
    phdrs.push({ flags: seg.flags, offset: start, vaddr: seg.vaddr, size: rel });
    offset = start + rel;
  }

  if (spec.symbols !== undefined) {
    const strtab = [Buffer.alloc(1)];
    let strLen = 1;
    const syms = [Buffer.alloc(24)];
    for (const sym of spec.symbols) {
      const entry = Buffer.alloc(24);
      entry.writeUInt32LE(strLen, 0);
      entry[4] = (1 << 4) | (sym.type ?? 2); // STB_GLOBAL
      entry.writeUInt16LE(1, 6);
      entry.writeBigUInt64LE(BigInt(sym.value), 8);
      entry.writeBigUInt64LE(BigInt(sym.size ?? 0), 16);
      syms.push(entry);
      const name = Buffer.from(`${sym.name}\0`);
      strtab.push(name);
      strLen += name.length;
    }
    const symIndex = placed.length + 1; // section 0 is the null section
    placed.push({ name: '.symtab', type: SHT_SYMTAB, flags: 0, addr: 0, offset: 0, data: Buffer.concat(syms), link: symIndex + 1, entsize: 24 });
    placed.push({ name: '.strtab', type: SHT_STRTAB, flags: 0, addr: 0, offset: 0, data: Buffer.concat(strtab), link: 0, entsize: 0 });
  }

  const names = [Buffer.alloc(1)];
  let namesLen = 1;
  const nameOffs: number[] = [];
  for (const s of [...placed.map((p) => p.name), '.shstrtab']) {
    nameOffs.push(namesLen);
    const b = Buffer.from(`${s}\0`);
    names.push(b);
    namesLen += b.length;
  }
  placed.push({ name: '.shstrtab', type: SHT_STRTAB, flags: 0, addr: 0, offset: 0, data: Buffer.concat(names), link: 0, entsize: 0 });
  for (const p of placed) {
    if (p.addr === 0) {
      p.offset = offset;
      offset = align(offset + p.data.length, 8);
    }
  }
  const shoff = align(offset, 8);
  const shnum = placed.length + 1;
  const total = spec.noSectionHeaders ? shoff : shoff + shnum * 64;
  const out = Buffer.alloc(total);

  out.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0);
  out.writeUInt16LE(spec.type ?? 2, 16);
  out.writeUInt16LE(62, 18); // EM_X86_64
  out.writeUInt32LE(1, 20);
  out.writeBigUInt64LE(BigInt(spec.segments[0]?.vaddr ?? 0), 24);
  out.writeBigUInt64LE(64n, 32);
  out.writeBigUInt64LE(spec.noSectionHeaders ? 0n : BigInt(shoff), 40);
  out.writeUInt16LE(64, 52);
  out.writeUInt16LE(56, 54);
  out.writeUInt16LE(phnum, 56);
  out.writeUInt16LE(64, 58);
  out.writeUInt16LE(spec.noSectionHeaders ? 0 : shnum, 60);
  out.writeUInt16LE(spec.noSectionHeaders ? 0 : shnum - 1, 62);

  phdrs.forEach((ph, i) => {
    const o = 64 + i * 56;
    out.writeUInt32LE(PT_LOAD, o);
    out.writeUInt32LE(ph.flags, o + 4);
    out.writeBigUInt64LE(BigInt(ph.offset), o + 8);
    out.writeBigUInt64LE(BigInt(ph.vaddr), o + 16);
    out.writeBigUInt64LE(BigInt(ph.vaddr), o + 24);
    out.writeBigUInt64LE(BigInt(ph.size), o + 32);
    out.writeBigUInt64LE(BigInt(ph.size), o + 40);
    out.writeBigUInt64LE(BigInt(PAGE), o + 48);
  });

  for (const p of placed) p.data.copy(out, p.offset);
  if (!spec.noSectionHeaders) {
    placed.forEach((p, i) => {
      const o = shoff + (i + 1) * 64;
      out.writeUInt32LE(nameOffs[i] ?? 0, o);
      out.writeUInt32LE(p.type, o + 4);
      out.writeBigUInt64LE(BigInt(p.flags), o + 8);
      out.writeBigUInt64LE(BigInt(p.addr), o + 16);
      out.writeBigUInt64LE(BigInt(p.offset), o + 24);
      out.writeBigUInt64LE(BigInt(p.data.length), o + 32);
      out.writeUInt32LE(p.link, o + 40);
      out.writeBigUInt64LE(16n, o + 48);
      out.writeBigUInt64LE(BigInt(p.entsize), o + 56);
    });
  }
  return out;
}

function align(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}
