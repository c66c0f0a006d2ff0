import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { type ElfSegment, ET_DYN, ET_EXEC, PT_LOAD } from './elf-file.ts';
import { fileOffsetToVaddr, findMapping, parseProcMaps, runtimeAddressToVaddr } from './maps.ts';

// A Go PIE (go build -buildmode=pie) as the kernel maps it, with the segments of its ELF file.
const PIE_MAPS = `
55d4c2a00000-55d4c2a81000 r-xp 00000000 fd:01 1048601                    /app/server
55d4c2a82000-55d4c2abf000 r--p 00082000 fd:01 1048601                    /app/server
55d4c2abf000-55d4c2b2e000 rw-p 000bf000 fd:01 1048601                    /app/server
55d4c2b2e000-55d4c2b46000 rw-p 0012e000 fd:01 1048601                    /app/server
55d4c2b46000-55d4c2b7a000 rw-p 00000000 00:00 0
c000000000-c000400000 rw-p 00000000 00:00 0
7f1e5c000000-7f1e5c021000 rw-p 00000000 00:00 0                          [heap]
7ffc1a3f0000-7ffc1a411000 rw-p 00000000 00:00 0                          [stack]
7ffc1a5f4000-7ffc1a5f6000 r-xp 00000000 00:00 0                          [vdso]
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
`;
const PIE_SEGMENTS: ElfSegment[] = [
  { type: PT_LOAD, flags: 5, offset: 0, vaddr: 0x400000, filesz: 0x812a0, memsz: 0x812a0, align: 0x1000 },
  { type: PT_LOAD, flags: 4, offset: 0x82000, vaddr: 0x482000, filesz: 0x3c637, memsz: 0x3c637, align: 0x1000 },
  { type: PT_LOAD, flags: 6, offset: 0xbf000, vaddr: 0x4bf000, filesz: 0x6e770, memsz: 0x6e770, align: 0x1000 },
  { type: PT_LOAD, flags: 6, offset: 0x12e000, vaddr: 0x52e000, filesz: 0x18080, memsz: 0x4bc48, align: 0x1000 },
];

describe('parseProcMaps', () => {
  it('reads every line, with paths, anonymous mappings and the vsyscall page', () => {
    const maps = parseProcMaps(PIE_MAPS);
    expect(maps).toHaveLength(10);
    expect(maps[0]).toEqual({
      start: 0x55d4c2a00000n,
      end: 0x55d4c2a81000n,
      perms: 'r-xp',
      offset: 0n,
      dev: 'fd:01',
      inode: 1048601,
      path: '/app/server',
    });
    expect(maps[4]?.path).toBe('');
    expect(maps[9]).toMatchObject({ start: 0xffffffffff600000n, path: '[vsyscall]' });
  });

  it('keeps paths with spaces and the (deleted) mark', () => {
    const [m] = parseProcMaps('00400000-00481000 r-xp 00000000 08:01 42   /opt/my app/bin (deleted)\n');
    expect(m?.path).toBe('/opt/my app/bin (deleted)');
  });

  it('leaves out lines that are not mappings', () => {
    expect(parseProcMaps('garbage\n\n00400000 r-xp\n')).toEqual([]);
  });
});

describe('findMapping', () => {
  const maps = parseProcMaps(PIE_MAPS);

  it('finds the mapping holding an address, start inclusive and end exclusive', () => {
    expect(findMapping(maps, 0x55d4c2a00000n)?.perms).toBe('r-xp');
    expect(findMapping(maps, 0x55d4c2a80fffn)?.perms).toBe('r-xp');
    expect(findMapping(maps, 0x55d4c2a81000n)).toBeUndefined(); // the gap between text and rodata
    expect(findMapping(maps, 0xc000001234)?.path).toBe('');
    expect(findMapping(maps, 0xffffffffff600010n)?.path).toBe('[vsyscall]');
    expect(findMapping(maps, 1)).toBeUndefined();
  });

  it('agrees with a linear scan for any address', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 0xffffffffffffffffn }), (addr) => {
        expect(findMapping(maps, addr)).toBe(maps.find((m) => addr >= m.start && addr < m.end));
      }),
    );
  });
});

describe('runtimeAddressToVaddr', () => {
  it('maps a PIE address through the mapping offset and the segment', () => {
    const maps = parseProcMaps(PIE_MAPS);
    const text = maps[0];
    expect(text).toBeDefined();
    // Text is mapped from file offset 0, which the first segment loads at 0x400000.
    expect(runtimeAddressToVaddr(text!, 0x55d4c2a00000n + 0x80fc0n, { type: ET_DYN, segments: PIE_SEGMENTS })).toBe(0x480fc0n);
    const rodata = maps[1];
    expect(runtimeAddressToVaddr(rodata!, 0x55d4c2a82010n, { type: ET_DYN, segments: PIE_SEGMENTS })).toBe(0x482010n);
    const data = maps[3];
    expect(runtimeAddressToVaddr(data!, 0x55d4c2b2e220n, { type: ET_DYN, segments: PIE_SEGMENTS })).toBe(0x52e220n);
  });

  it('keeps the address of a fixed-address executable (Go on amd64 by default)', () => {
    const [text] = parseProcMaps('00400000-00482000 r-xp 00000000 fd:01 7 /app/hotloop\n');
    const segments: ElfSegment[] = [{ type: PT_LOAD, flags: 5, offset: 0, vaddr: 0x400000, filesz: 0x8104b, memsz: 0x8104b, align: 0x1000 }];
    expect(runtimeAddressToVaddr(text!, 0x480fc0, { type: ET_EXEC, segments })).toBe(0x480fc0n);
  });

  it('answers undefined for an address outside the mapping', () => {
    const [text] = parseProcMaps(PIE_MAPS);
    expect(runtimeAddressToVaddr(text!, 0x1000n, { type: ET_DYN, segments: PIE_SEGMENTS })).toBeUndefined();
  });

  it('is the inverse of loading at any page-aligned base', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 1n, max: 0x7fff_ffffn }), fc.integer({ min: 0, max: 0x812a0 - 1 }), (page, rel) => {
        const base = page << 12n;
        const mapping = { start: base, end: base + 0x81000n, perms: 'r-xp', offset: 0n, dev: '', inode: 1, path: '/app' };
        const addr = base + BigInt(rel);
        const vaddr = runtimeAddressToVaddr(mapping, addr, { type: ET_DYN, segments: PIE_SEGMENTS });
        expect(vaddr).toBe(rel < 0x81000 ? 0x400000n + BigInt(rel) : undefined);
      }),
    );
  });
});

describe('fileOffsetToVaddr', () => {
  it('finds the segment holding a file offset', () => {
    expect(fileOffsetToVaddr(PIE_SEGMENTS, 0x82010)).toBe(0x482010n);
    expect(fileOffsetToVaddr(PIE_SEGMENTS, 0x12e000n + 0x20000n)).toBe(0x54e000n); // past filesz, inside memsz
    expect(fileOffsetToVaddr(PIE_SEGMENTS, 0x900000)).toBeUndefined();
  });
});
