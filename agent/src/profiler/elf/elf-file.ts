/**
 * A small reader for 64-bit little-endian ELF files (the binaries the profiler symbolizes on
 * linux/amd64 and arm64): headers, sections by name, loadable segments, `.symtab`, and the
 * mapping between virtual addresses and file offsets. Bytes are read on demand.
 */
import { NemuError } from '#common/errors.js';

import { AgentErrorCodes } from '../../errors.ts';
import { BufferSource, type ByteSource, FileSource } from './source.ts';

export const ET_EXEC = 2;
export const ET_DYN = 3;
export const PT_LOAD = 1;
export const SHT_SYMTAB = 2;
export const SHT_NOBITS = 8;
export const STT_FUNC = 2;

const EHDR_SIZE = 64;
const SHDR_SIZE = 64;
const PHDR_SIZE = 56;
const SYM_SIZE = 24;
const SHN_UNDEF = 0;
const SHN_XINDEX = 0xffff;

export interface ElfSection {
  name: string;
  type: number;
  flags: number;
  addr: number;
  offset: number;
  size: number;
  link: number;
  info: number;
  entsize: number;
}

export interface ElfSegment {
  type: number;
  flags: number;
  offset: number;
  vaddr: number;
  filesz: number;
  memsz: number;
  align: number;
}

export interface ElfSymbol {
  name: string;
  value: number;
  size: number;
  /** STT_* (low nibble of st_info). */
  type: number;
  /** STB_* (high nibble of st_info). */
  bind: number;
  shndx: number;
}

/** What address translation needs from an ELF file (see maps.ts). */
export interface ElfLayout {
  readonly type: number;
  readonly segments: readonly ElfSegment[];
}

export function elfError(path: string, what: string, cause?: unknown): NemuError {
  return new NemuError(AgentErrorCodes.ELF, `${path}: ${what}`, { status: 422, cause });
}

export class ElfFile implements ElfLayout {
  private symbolsOnce: Promise<ElfSymbol[] | undefined> | undefined;

  private constructor(
    readonly path: string,
    private readonly source: ByteSource,
    /** ET_EXEC for a fixed-address executable, ET_DYN for PIE and shared objects. */
    readonly type: number,
    readonly machine: number,
    readonly entry: number,
    readonly sections: readonly ElfSection[],
    readonly segments: readonly ElfSegment[],
  ) {}

  /** Opens and checks a file; the caller closes it (see withElfFile). */
  static async open(path: string): Promise<ElfFile> {
    let source: FileSource;
    try {
      source = await FileSource.open(path);
    } catch (err) {
      throw elfError(path, `cannot open: ${(err as Error).message}`, err);
    }
    try {
      return await ElfFile.parse(path, source);
    } catch (err) {
      await source.close();
      throw err;
    }
  }

  /** An ELF image already in memory; `name` only appears in error messages. */
  static fromBuffer(buf: Buffer, name = '<buffer>'): Promise<ElfFile> {
    return ElfFile.parse(name, new BufferSource(buf));
  }

  private static async parse(path: string, source: ByteSource): Promise<ElfFile> {
    await checkIdent(path, source);
    const header = await readHeader(path, source);
    const sectionTable = await readSectionTable(path, source, header);
    const segments = await readSegments(path, source, header);
    const sections = sectionTable === undefined ? [] : await readSections(path, source, sectionTable, header);
    return new ElfFile(path, source, header.type, header.machine, header.entry, sections, segments);
  }

  close(): Promise<void> {
    return this.source.close();
  }

  get size(): number {
    return this.source.size;
  }

  section(name: string): ElfSection | undefined {
    return this.sections.find((s) => s.name === name);
  }

  get loadSegments(): ElfSegment[] {
    return this.segments.filter((s) => s.type === PT_LOAD);
  }

  /** The bytes of a section; a NOBITS section (.bss) has none in the file. */
  async readSection(section: ElfSection | string): Promise<Buffer> {
    const s = typeof section === 'string' ? this.section(section) : section;
    if (s === undefined) throw elfError(this.path, `no section ${String(section)}`);
    if (s.type === SHT_NOBITS) return Buffer.alloc(0);
    return this.read(s.offset, s.size, `section ${s.name}`);
  }

  /** Bytes at a file offset; a range past the end of the file is an error naming `what`. */
  async read(offset: number, length: number, what = 'data'): Promise<Buffer> {
    if (offset < 0 || length < 0 || offset + length > this.source.size) {
      throw truncated(this.path, what, offset, length, this.source.size);
    }
    const buf = await this.source.read(offset, length);
    if (buf.length !== length) throw truncated(this.path, what, offset, length, offset + buf.length);
    return buf;
  }

  /** File offset holding the byte at a virtual address, if a loadable segment has it in the file. */
  vaddrToOffset(vaddr: number): number | undefined {
    for (const seg of this.segments) {
      if (seg.type === PT_LOAD && vaddr >= seg.vaddr && vaddr < seg.vaddr + seg.filesz) {
        return seg.offset + (vaddr - seg.vaddr);
      }
    }
    return undefined;
  }

  /** Virtual address a file offset is loaded at, if a loadable segment maps it. */
  offsetToVaddr(offset: number): number | undefined {
    for (const seg of this.segments) {
      if (seg.type === PT_LOAD && offset >= seg.offset && offset < seg.offset + seg.filesz) {
        return seg.vaddr + (offset - seg.offset);
      }
    }
    return undefined;
  }

  /**
   * Bytes at a virtual address. The range may end early at the end of the segment's file image
   * (`.bss` has no bytes in the file); undefined when no segment holds the address.
   */
  async readVaddr(vaddr: number, length: number): Promise<Buffer | undefined> {
    for (const seg of this.segments) {
      if (seg.type === PT_LOAD && vaddr >= seg.vaddr && vaddr < seg.vaddr + seg.filesz) {
        const n = Math.min(length, seg.vaddr + seg.filesz - vaddr);
        return this.read(seg.offset + (vaddr - seg.vaddr), n, `data at 0x${vaddr.toString(16)}`);
      }
    }
    return undefined;
  }

  /** `.symtab`, or undefined when the binary is stripped (`-s`, `strip`). Read once. */
  symbols(): Promise<ElfSymbol[] | undefined> {
    this.symbolsOnce ??= this.readSymbols();
    return this.symbolsOnce;
  }

  private async readSymbols(): Promise<ElfSymbol[] | undefined> {
    const symtab = this.sections.find((s) => s.type === SHT_SYMTAB);
    if (symtab === undefined) return undefined;
    const strtab = this.sections[symtab.link];
    if (strtab === undefined) throw elfError(this.path, `.symtab links to missing string table ${symtab.link}`);
    const [data, names] = await Promise.all([this.readSection(symtab), this.readSection(strtab)]);
    const out: ElfSymbol[] = [];
    for (let o = 0; o + SYM_SIZE <= data.length; o += SYM_SIZE) {
      const info = data[o + 4] ?? 0;
      out.push({
        name: cstring(names, data.readUInt32LE(o)),
        type: info & 0xf,
        bind: info >> 4,
        shndx: data.readUInt16LE(o + 6),
        value: u64(data, o + 8, this.path),
        size: u64(data, o + 16, this.path),
      });
    }
    return out;
  }
}

/** Opens an ELF file, runs fn, and closes the file whatever happens. */
export async function withElfFile<T>(path: string, fn: (elf: ElfFile) => Promise<T>): Promise<T> {
  const elf = await ElfFile.open(path);
  try {
    return await fn(elf);
  } finally {
    await elf.close();
  }
}

/** The fields of the ELF header that locate everything else. */
interface ElfHeader {
  type: number;
  machine: number;
  entry: number;
  phoff: number;
  shoff: number;
  phentsize: number;
  phnum: number;
  shentsize: number;
  shnum: number;
  shstrndx: number;
}

/** Refuses anything but a 64-bit little-endian ELF file, saying what it is instead. */
async function checkIdent(path: string, source: ByteSource): Promise<void> {
  if (source.size < 16) {
    throw elfError(path, `not an ELF file (${source.size} bytes, too short for an ELF header)`);
  }
  const ident = await source.read(0, 16);
  if (ident[0] !== 0x7f || ident[1] !== 0x45 || ident[2] !== 0x4c || ident[3] !== 0x46) {
    throw elfError(path, 'not an ELF file (no \\x7fELF magic); expected a Linux executable');
  }
  if (ident[4] !== 2) {
    throw elfError(path, `${ident[4] === 1 ? '32-bit' : 'unknown-class'} ELF is not supported; only 64-bit binaries can be symbolized`);
  }
  if (ident[5] !== 1) {
    throw elfError(path, 'big-endian ELF is not supported; only little-endian binaries can be symbolized');
  }
}

/**
 * The ELF header, completed from section 0 under extended numbering (more than 0xff00
 * sections, or 0xffff program headers, keep their counts there).
 */
async function readHeader(path: string, source: ByteSource): Promise<ElfHeader> {
  if (source.size < EHDR_SIZE) throw truncated(path, 'the ELF header', 0, EHDR_SIZE, source.size);
  const eh = await source.read(0, EHDR_SIZE);
  const header: ElfHeader = {
    type: eh.readUInt16LE(16),
    machine: eh.readUInt16LE(18),
    entry: u64(eh, 24, path),
    phoff: u64(eh, 32, path),
    shoff: u64(eh, 40, path),
    phentsize: eh.readUInt16LE(54),
    phnum: eh.readUInt16LE(56),
    shentsize: eh.readUInt16LE(58),
    shnum: eh.readUInt16LE(60),
    shstrndx: eh.readUInt16LE(62),
  };
  if (header.shoff === 0) return header;
  if (header.shentsize !== SHDR_SIZE) throw elfError(path, `unexpected section header size ${header.shentsize}`);
  if (header.shoff + SHDR_SIZE > source.size) throw truncated(path, 'the section header table', header.shoff, SHDR_SIZE, source.size);
  const first = await source.read(header.shoff, SHDR_SIZE);
  if (header.shnum === 0) header.shnum = u64(first, 32, path);
  if (header.shstrndx === SHN_XINDEX) header.shstrndx = first.readUInt32LE(40);
  if (header.phnum === 0xffff) header.phnum = first.readUInt32LE(44);
  return header;
}

/** The raw section header table, or undefined when the file has none. */
async function readSectionTable(path: string, source: ByteSource, { shoff, shnum }: ElfHeader): Promise<Buffer | undefined> {
  if (shoff === 0) return undefined;
  const len = shnum * SHDR_SIZE;
  if (shoff + len > source.size) throw truncated(path, 'the section header table', shoff, len, source.size);
  return source.read(shoff, len);
}

async function readSegments(path: string, source: ByteSource, header: ElfHeader): Promise<ElfSegment[]> {
  const { phoff, phnum, phentsize } = header;
  const segments: ElfSegment[] = [];
  if (phoff === 0 || phnum === 0) return segments;
  if (phentsize !== PHDR_SIZE) throw elfError(path, `unexpected program header size ${phentsize}`);
  const len = phnum * PHDR_SIZE;
  if (phoff + len > source.size) throw truncated(path, 'the program header table', phoff, len, source.size);
  const ph = await source.read(phoff, len);
  for (let i = 0; i < phnum; i++) {
    const o = i * PHDR_SIZE;
    segments.push({
      type: ph.readUInt32LE(o),
      flags: ph.readUInt32LE(o + 4),
      offset: u64(ph, o + 8, path),
      vaddr: u64(ph, o + 16, path),
      filesz: u64(ph, o + 32, path),
      memsz: u64(ph, o + 40, path),
      align: u64(ph, o + 48, path),
    });
  }
  return segments;
}

/** The sections of the table, named from the section name table (shstrndx). */
async function readSections(path: string, source: ByteSource, table: Buffer, { shnum, shstrndx }: ElfHeader): Promise<ElfSection[]> {
  const raw: (ElfSection & { nameOff: number })[] = [];
  for (let i = 0; i < shnum; i++) {
    const o = i * SHDR_SIZE;
    raw.push({
      nameOff: table.readUInt32LE(o),
      name: '',
      type: table.readUInt32LE(o + 4),
      flags: u64(table, o + 8, path),
      addr: u64(table, o + 16, path),
      offset: u64(table, o + 24, path),
      size: u64(table, o + 32, path),
      link: table.readUInt32LE(o + 40),
      info: table.readUInt32LE(o + 44),
      entsize: u64(table, o + 56, path),
    });
  }
  const strtab = raw[shstrndx];
  let names: Buffer | undefined;
  if (shstrndx !== SHN_UNDEF && strtab !== undefined && strtab.type !== SHT_NOBITS) {
    if (strtab.offset + strtab.size > source.size) {
      throw truncated(path, 'the section name table', strtab.offset, strtab.size, source.size);
    }
    names = await source.read(strtab.offset, strtab.size);
  }
  return raw.map(({ nameOff, ...s }) => ({ ...s, name: names === undefined ? '' : cstring(names, nameOff) }));
}

function truncated(path: string, what: string, offset: number, length: number, size: number): NemuError {
  return elfError(
    path,
    `truncated ELF file: ${what} (${length} bytes at offset ${offset}) extends past the end of the ${size}-byte file; ` +
      'the binary is incomplete or was modified while being read',
  );
}

/** A 64-bit field as a number; offsets and addresses of a user-space binary fit in 53 bits. */
function u64(buf: Buffer, offset: number, path: string): number {
  const v = buf.readBigUInt64LE(offset);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw elfError(path, `64-bit field 0x${v.toString(16)} at header offset ${offset} is out of range; the file is corrupt`);
  }
  return Number(v);
}

export function cstring(buf: Buffer, offset: number): string {
  if (offset < 0 || offset >= buf.length) return '';
  const end = buf.indexOf(0, offset);
  return buf.toString('utf8', offset, end < 0 ? buf.length : end);
}
