import { describe, expect, it } from 'vitest';

import { buildElf, type FakeElfSpec, fakeSectionAddr } from '#test/harness/fake-elf.js';

import { ElfFile } from '../elf/elf-file.ts';
import { parseModinfo, readGoBuildInfo } from './buildinfo.ts';

// cmd/go/internal/modload's infoStart and infoEnd.
const INFO_START = Buffer.from('3077af0c9274080241e1c107e6d618e6', 'hex');
const INFO_END = Buffer.from('f932433186182072008242104116d8f2', 'hex');
const MODINFO = 'path\texample.com/shop/cmd/api\nmod\texample.com/shop\t(devel)\t\ndep\tgolang.org/x/sys\tv0.5.0\th1:abc=\nbuild\tCGO_ENABLED=0\n';
const FRAMED = Buffer.concat([INFO_START, Buffer.from(MODINFO), INFO_END]);

function header(flags: number): Buffer {
  const h = Buffer.alloc(32);
  h.write('\xff Go buildinf:', 0, 'latin1');
  h[14] = 8;
  h[15] = flags;
  return h;
}

function varintString(s: Buffer): Buffer {
  const len: number[] = [];
  let n = s.length;
  while (n >= 0x80) {
    len.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  len.push(n);
  return Buffer.concat([Buffer.from(len), s]);
}

/** Go 1.18+: the strings follow the header. */
function inlineFormat(version: string, mod: Buffer, noSectionHeaders = false): Buffer {
  const blob = Buffer.concat([header(2), varintString(Buffer.from(version)), varintString(mod)]);
  return buildElf({
    noSectionHeaders,
    segments: [
      { vaddr: 0x401000, flags: 5, sections: [{ name: '.text', data: Buffer.alloc(16) }] },
      {
        vaddr: 0x511000,
        flags: 6,
        sections: [
          { name: '.go.buildinfo', data: blob },
          { name: '.noptrdata', data: Buffer.alloc(64) },
        ],
      },
    ],
  });
}

/** Go 1.13–1.17: the header points at Go string headers {data, len} in .data. */
function pointerFormat(version: string, mod: Buffer): Buffer {
  const blob = header(0);
  const strings = Buffer.concat([Buffer.alloc(32), Buffer.from(version), mod]);
  const spec: FakeElfSpec = {
    segments: [
      { vaddr: 0x401000, flags: 5, sections: [{ name: '.text', data: Buffer.alloc(16) }] },
      {
        vaddr: 0x511000,
        flags: 6,
        sections: [
          { name: '.go.buildinfo', data: blob },
          { name: '.data', data: strings },
        ],
      },
    ],
  };
  const data = fakeSectionAddr(spec, '.data');
  // runtime.buildVersion and runtime.modinfo: {ptr, len} at data+0 and data+16.
  strings.writeBigUInt64LE(BigInt(data + 32), 0);
  strings.writeBigUInt64LE(BigInt(version.length), 8);
  strings.writeBigUInt64LE(BigInt(data + 32 + version.length), 16);
  strings.writeBigUInt64LE(BigInt(mod.length), 24);
  blob.writeBigUInt64LE(BigInt(data), 16);
  blob.writeBigUInt64LE(BigInt(data + 16), 24);
  return buildElf(spec);
}

async function read(image: Buffer) {
  return readGoBuildInfo(await ElfFile.fromBuffer(image));
}

describe('readGoBuildInfo', () => {
  it('reads the Go 1.18+ inline-string format', async () => {
    expect(await read(inlineFormat('go1.19.8', FRAMED))).toEqual({
      goVersion: 'go1.19.8',
      modulePath: 'example.com/shop',
      mainPath: 'example.com/shop/cmd/api',
      modinfo: MODINFO,
    });
  });

  it('reads the older pointer format', async () => {
    expect(await read(pointerFormat('go1.16.15', FRAMED))).toMatchObject({
      goVersion: 'go1.16.15',
      modulePath: 'example.com/shop',
      mainPath: 'example.com/shop/cmd/api',
    });
  });

  it('finds the blob at the start of the data segment when section names are gone', async () => {
    expect(await read(inlineFormat('go1.22.5', FRAMED, true))).toMatchObject({ goVersion: 'go1.22.5', modulePath: 'example.com/shop' });
  });

  it('gives the version alone for a binary built outside a module', async () => {
    expect(await read(inlineFormat('go1.19.8', Buffer.alloc(0)))).toEqual({ goVersion: 'go1.19.8', modinfo: '' });
  });

  it('answers undefined for a binary without build info', async () => {
    const image = buildElf({ segments: [{ vaddr: 0x401000, flags: 5, sections: [{ name: '.text', data: Buffer.alloc(16) }] }] });
    expect(await read(image)).toBeUndefined();
  });
});

describe('parseModinfo', () => {
  it('takes the main package from `path` and the main module from `mod`', () => {
    expect(parseModinfo(MODINFO)).toEqual({ mainPath: 'example.com/shop/cmd/api', modulePath: 'example.com/shop' });
    expect(parseModinfo('path\tcommand-line-arguments\n')).toEqual({ mainPath: 'command-line-arguments' });
    expect(parseModinfo('')).toEqual({});
  });
});
