import { copyFile, mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { isNemuError } from '#common/errors.js';
import { buildElf, type FakeElfSpec, fakeSectionAddr } from '#test/harness/fake-elf.js';

import { ElfFile, ET_EXEC, PT_LOAD, STT_FUNC, withElfFile } from './elf-file.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nemu-elf-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function elfErrorOf(path: string): Promise<{ code: string; message: string }> {
  try {
    await withElfFile(path, async () => undefined);
  } catch (err) {
    if (isNemuError(err)) return { code: err.code, message: err.message };
    throw err;
  }
  throw new Error(`${path} was read as ELF`);
}

const spec: FakeElfSpec = {
  segments: [
    { vaddr: 0x401000, flags: 5, sections: [{ name: '.text', data: Buffer.alloc(0x40, 0x90) }] },
    {
      vaddr: 0x482000,
      flags: 4,
      sections: [
        { name: '.rodata', data: Buffer.from('hello, rodata\0') },
        { name: '.gopclntab', data: Buffer.alloc(0x20, 0xee) },
      ],
    },
    { vaddr: 0x511000, flags: 6, sections: [{ name: '.data', data: Buffer.from('data!') }] },
  ],
  symbols: [
    { name: 'main.main', value: 0x401000, size: 0x20, type: STT_FUNC },
    { name: 'main.other', value: 0x401020, size: 0x20, type: STT_FUNC },
  ],
};

describe('ElfFile', () => {
  it('reads sections by name, loadable segments and .symtab', async () => {
    const elf = await ElfFile.fromBuffer(buildElf(spec));
    expect(elf.type).toBe(ET_EXEC);
    expect(elf.sections.map((s) => s.name)).toEqual(['', '.text', '.rodata', '.gopclntab', '.data', '.symtab', '.strtab', '.shstrtab']);
    expect(elf.section('.gopclntab')?.addr).toBe(fakeSectionAddr(spec, '.gopclntab'));
    expect((await elf.readSection('.rodata')).toString('latin1')).toBe('hello, rodata\0');
    expect(elf.loadSegments.map((s) => [s.type, s.vaddr, s.flags])).toEqual([
      [PT_LOAD, 0x401000, 5],
      [PT_LOAD, 0x482000, 4],
      [PT_LOAD, 0x511000, 6],
    ]);
    const symbols = await elf.symbols();
    expect(symbols?.filter((s) => s.name !== '').map((s) => [s.name, s.value, s.size, s.type])).toEqual([
      ['main.main', 0x401000, 0x20, STT_FUNC],
      ['main.other', 0x401020, 0x20, STT_FUNC],
    ]);
  });

  it('maps virtual addresses to file offsets and back', async () => {
    const elf = await ElfFile.fromBuffer(buildElf(spec));
    const rodata = elf.section('.rodata');
    expect(rodata).toBeDefined();
    const { addr, offset } = rodata as { addr: number; offset: number };
    expect(elf.vaddrToOffset(addr + 7)).toBe(offset + 7);
    expect(elf.offsetToVaddr(offset + 7)).toBe(addr + 7);
    expect((await elf.readVaddr(addr + 7, 6))?.toString('latin1')).toBe('rodata');
    expect(elf.vaddrToOffset(0x300000)).toBeUndefined();
    expect(await elf.readVaddr(0x300000, 4)).toBeUndefined();
  });

  it('reads the section and program header counts from section 0 under extended numbering', async () => {
    // What a linker writes for more than 0xff00 sections (or 0xffff program headers): the
    // header holds 0 / SHN_XINDEX / PN_XNUM and section 0 the real numbers.
    const buf = buildElf(spec);
    const shoff = Number(buf.readBigUInt64LE(40));
    const shnum = buf.readUInt16LE(60);
    const shstrndx = buf.readUInt16LE(62);
    const phnum = buf.readUInt16LE(56);
    buf.writeUInt16LE(0, 60);
    buf.writeUInt16LE(0xffff, 62);
    buf.writeUInt16LE(0xffff, 56);
    buf.writeBigUInt64LE(BigInt(shnum), shoff + 32);
    buf.writeUInt32LE(shstrndx, shoff + 40);
    buf.writeUInt32LE(phnum, shoff + 44);
    const elf = await ElfFile.fromBuffer(buf);
    expect(elf.sections.map((s) => s.name)).toEqual(['', '.text', '.rodata', '.gopclntab', '.data', '.symtab', '.strtab', '.shstrtab']);
    expect(elf.loadSegments.map((s) => s.vaddr)).toEqual([0x401000, 0x482000, 0x511000]);
  });

  it('says a stripped file has no symbols', async () => {
    const elf = await ElfFile.fromBuffer(buildElf({ ...spec, symbols: undefined }));
    expect(await elf.symbols()).toBeUndefined();
  });

  it('reads a real system binary', async () => {
    await withElfFile('/bin/ls', async (elf) => {
      expect(elf.section('.text')?.size).toBeGreaterThan(0);
      expect(elf.loadSegments.some((s) => (s.flags & 1) !== 0)).toBe(true);
    });
  });

  it('rejects a file that is not ELF, naming the code and the file', async () => {
    const path = join(dir, 'script.sh');
    await writeFile(path, '#!/bin/sh\necho hello, this is a shell script and not a binary\n');
    const err = await elfErrorOf(path);
    expect(err.code).toBe('NEMU_ERR_ELF');
    expect(err.message).toContain(path);
    expect(err.message).toMatch(/not an ELF file/);
  });

  it('rejects a file too short to be anything', async () => {
    const path = join(dir, 'tiny');
    await writeFile(path, Buffer.from([0x7f, 0x45]));
    expect((await elfErrorOf(path)).message).toMatch(/too short/);
  });

  it('rejects 32-bit and big-endian ELF with what is supported', async () => {
    const image = buildElf(spec);
    const elf32 = Buffer.from(image);
    elf32[4] = 1;
    const path32 = join(dir, 'elf32');
    await writeFile(path32, elf32);
    expect(await elfErrorOf(path32)).toMatchObject({ code: 'NEMU_ERR_ELF', message: expect.stringMatching(/32-bit ELF is not supported/) });

    const be = Buffer.from(image);
    be[5] = 2;
    const pathBe = join(dir, 'elfbe');
    await writeFile(pathBe, be);
    expect((await elfErrorOf(pathBe)).message).toMatch(/big-endian/);
  });

  it('rejects a truncated file, saying what lies past its end', async () => {
    const path = join(dir, 'ls-truncated');
    await copyFile('/bin/ls', path);
    const size = (await readFile(path)).length;
    await truncate(path, Math.floor(size / 2)); // the section headers sit at the end
    const err = await elfErrorOf(path);
    expect(err.code).toBe('NEMU_ERR_ELF');
    expect(err.message).toMatch(/truncated ELF file: the section header table/);

    await truncate(path, 40); // inside the ELF header
    expect((await elfErrorOf(path)).message).toMatch(/truncated ELF file: the ELF header/);
  });

  it('rejects reading data that the file no longer holds', async () => {
    const image = buildElf({ ...spec, noSectionHeaders: true });
    const dataOffset = (await ElfFile.fromBuffer(image)).vaddrToOffset(0x511000) ?? 0;
    const elf = await ElfFile.fromBuffer(image.subarray(0, dataOffset + 2), 'cut');
    await expect(elf.readVaddr(0x511000, 5)).rejects.toMatchObject({ code: 'NEMU_ERR_ELF', message: expect.stringMatching(/^cut: truncated/) });
  });

  it('reads a binary whose section headers were removed', async () => {
    const elf = await ElfFile.fromBuffer(buildElf({ ...spec, noSectionHeaders: true }));
    expect(elf.sections).toEqual([]);
    expect(elf.loadSegments).toHaveLength(3);
    expect((await elf.readVaddr(0x511000, 5))?.toString()).toBe('data!');
  });
});
