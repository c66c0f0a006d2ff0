import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { decodePcValueTable, decodePcValueTableCompact, lookupDecoded, pcValue, readUvarint, zigzag } from './pcvalue.ts';

describe('readUvarint', () => {
  it('reads one- and multi-byte varints', () => {
    expect(readUvarint(Uint8Array.from([0x05]), 0)).toEqual({ value: 5, next: 1 });
    expect(readUvarint(Uint8Array.from([0xac, 0x02]), 0)).toEqual({ value: 300, next: 2 });
    expect(readUvarint(Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0x0f]), 0)).toEqual({ value: 0xffffffff, next: 5 });
    expect(readUvarint(Uint8Array.from([0x00, 0x80, 0x01]), 1)).toEqual({ value: 128, next: 3 });
  });

  it('refuses a varint cut short', () => {
    expect(() => readUvarint(Uint8Array.from([0x80, 0x80]), 0)).toThrow(RangeError);
  });
});

describe('zigzag', () => {
  it('alternates signs as Go encodes value deltas', () => {
    expect([0, 1, 2, 3, 4, 22, 0xffffffff].map(zigzag)).toEqual([0, -1, 1, -2, 2, 11, -2147483648]);
  });
});

// Values 10 on [0x1000, 0x1010), 12 on [0x1010, 0x1014), 9 on [0x1014, 0x1100), as the Go
// linker writes them: from -1, deltas +11 (zig-zag 22), +2 (4), -3 (5); pc deltas 16, 4, 236.
const TABLE = Uint8Array.from([0xff, 0x16, 0x10, 0x04, 0x04, 0x05, 0xec, 0x01, 0x00]);
const OFF = 1; // tables start at an offset into pctab; 0 means "no table"

describe('pcValue', () => {
  it('looks up known bytes', () => {
    expect(pcValue(TABLE, OFF, 0x1000, 0x1000, 1)).toBe(10);
    expect(pcValue(TABLE, OFF, 0x1000, 0x100f, 1)).toBe(10);
    expect(pcValue(TABLE, OFF, 0x1000, 0x1010, 1)).toBe(12);
    expect(pcValue(TABLE, OFF, 0x1000, 0x1013, 1)).toBe(12);
    expect(pcValue(TABLE, OFF, 0x1000, 0x1014, 1)).toBe(9);
    expect(pcValue(TABLE, OFF, 0x1000, 0x10ff, 1)).toBe(9);
  });

  it('answers -1 past the end of the table', () => {
    expect(pcValue(TABLE, OFF, 0x1000, 0x1100, 1)).toBe(-1);
    expect(pcValue(TABLE, OFF, 0x1000, 0x2000, 1)).toBe(-1);
  });

  it('scales pc deltas by the instruction quantum (arm64: 4)', () => {
    expect(pcValue(TABLE, OFF, 0x1000, 0x103f, 4)).toBe(10);
    expect(pcValue(TABLE, OFF, 0x1000, 0x1040, 4)).toBe(12);
    expect(pcValue(TABLE, OFF, 0x1000, 0x1050, 4)).toBe(9);
  });

  it('does not read past a table cut short', () => {
    expect(pcValue(TABLE.subarray(0, 4), OFF, 0x1000, 0x1012, 1)).toBe(-1);
  });
});

describe('decodePcValueTableCompact', () => {
  it('decodes once for binary-search lookups, offsets from the entry', () => {
    const t = decodePcValueTableCompact(TABLE, OFF, 1);
    expect([...t.ends]).toEqual([0x10, 0x14, 0x100]);
    expect([...t.values]).toEqual([10, 12, 9]);
    expect([0, 0xf, 0x10, 0x13, 0x14, 0xff, 0x100].map((o) => lookupDecoded(t, o))).toEqual([10, 10, 12, 12, 9, 9, -1]);
  });

  it('decodes a table longer than its scratch space', () => {
    const long: number[] = [];
    for (let i = 0; i < 5000; i++) long.push(i === 0 ? 2 : 4, 1); // values 0, 2, 4, … one byte each
    long.push(0);
    const t = decodePcValueTableCompact(Uint8Array.from(long), 0, 1);
    expect(t.ends).toHaveLength(5000);
    expect(lookupDecoded(t, 4999)).toBe(2 * 4999);
  });
});

describe('decodePcValueTable', () => {
  it('lists the ranges', () => {
    expect(decodePcValueTable(TABLE, OFF, 0x1000, 1)).toEqual([
      { start: 0x1000, end: 0x1010, value: 10 },
      { start: 0x1010, end: 0x1014, value: 12 },
      { start: 0x1014, end: 0x1100, value: 9 },
    ]);
  });
});

/** The Go linker's encoding (cmd/internal/obj pctab): value deltas zig-zag, pc deltas / quantum. */
function encode(runs: { value: number; length: number }[], quantum: number): Uint8Array {
  const out: number[] = [];
  const varint = (v: number): void => {
    let u = v >>> 0;
    while (u >= 0x80) {
      out.push((u & 0x7f) | 0x80);
      u >>>= 7;
    }
    out.push(u);
  };
  let prev = -1;
  for (const { value, length } of runs) {
    const d = value - prev;
    varint(d < 0 ? (-d << 1) - 1 : d << 1);
    varint(length / quantum);
    prev = value;
  }
  out.push(0);
  return Uint8Array.from(out);
}

describe('pc-value tables round-trip', () => {
  it('every pc finds the value of its run, for any table', () => {
    const run = fc.record({ value: fc.integer({ min: -1, max: 100_000 }), length: fc.integer({ min: 1, max: 5_000 }) });
    fc.assert(
      fc.property(fc.array(run, { minLength: 1, maxLength: 40 }), fc.constantFrom(1, 4), fc.nat(), (runs, quantum, probe) => {
        // Consecutive runs with the same value would be merged by the linker; a zero delta
        // after the first pair would end the table.
        const merged = runs.filter((r, i) => i === 0 || r.value !== runs[i - 1]?.value).map((r) => ({ ...r, length: r.length * quantum }));
        const entry = 0x400000;
        const tab = encode(merged, quantum);
        const ranges = decodePcValueTable(tab, 0, entry, quantum);
        expect(ranges.map((r) => r.value)).toEqual(merged.map((r) => r.value));
        const total = merged.reduce((n, r) => n + r.length, 0);
        const pc = entry + (probe % (total + 10));
        const want = ranges.find((r) => pc >= r.start && pc < r.end)?.value ?? -1;
        expect(pcValue(tab, 0, entry, pc, quantum)).toBe(want);
        expect(lookupDecoded(decodePcValueTableCompact(tab, 0, quantum), pc - entry)).toBe(want);
      }),
    );
  });
});
