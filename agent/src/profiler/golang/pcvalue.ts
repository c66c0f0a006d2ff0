/**
 * Go's pc-value tables (pcfile, pcln, pcdata): a run of (value delta, pc delta) pairs, each a
 * varint; value deltas are zig-zag signed, pc deltas are multiplied by the instruction quantum
 * (1 on amd64, 4 on arm64). The value starts at -1 and the pc at the function's entry; a zero
 * value delta after the first pair ends the table. Mirrors runtime.step / runtime.pcvalue.
 */

/** Unsigned LEB128 as the runtime reads it (32 bits). Returns the value and the next position. */
export function readUvarint(buf: Uint8Array, pos: number): { value: number; next: number } {
  let value = 0;
  let shift = 0;
  for (;;) {
    const b = buf[pos++];
    if (b === undefined) throw new RangeError('varint runs past the end of the table');
    value = (value | ((b & 0x7f) << (shift & 31))) >>> 0;
    if ((b & 0x80) === 0) return { value, next: pos };
    shift += 7;
  }
}

/** Zig-zag decoding of a pc-value delta: 0→0, 1→-1, 2→1, 3→-2… as int32. */
export function zigzag(u: number): number {
  return (-(u & 1) ^ (u >>> 1)) | 0;
}

/** One row of a decoded table: `value` holds for pcs in [start, end). */
export interface PcValueRange {
  start: number;
  end: number;
  value: number;
}

/**
 * The value the table at `tab[off]` gives for `targetPc`, or -1 when the pc lies beyond the
 * table (as the runtime's non-strict lookup answers). Written without allocation: it runs
 * once per frame for every sampled pc.
 */
export function pcValue(tab: Uint8Array, off: number, entry: number, targetPc: number, quantum: number): number {
  let p = off;
  let pc = entry;
  let val = -1;
  for (;;) {
    // value delta
    let b = tab[p++];
    if (b === undefined) return -1;
    if (b === 0 && pc !== entry) return -1;
    let uv = b & 0x7f;
    for (let shift = 7; (b & 0x80) !== 0; shift += 7) {
      b = tab[p++];
      if (b === undefined) return -1;
      uv = (uv | ((b & 0x7f) << (shift & 31))) >>> 0;
    }
    val = (val + zigzag(uv)) | 0;
    // pc delta
    b = tab[p++];
    if (b === undefined) return -1;
    let pcd = b & 0x7f;
    for (let shift = 7; (b & 0x80) !== 0; shift += 7) {
      b = tab[p++];
      if (b === undefined) return -1;
      pcd = (pcd | ((b & 0x7f) << (shift & 31))) >>> 0;
    }
    pc += pcd * quantum;
    if (targetPc < pc) return val;
  }
}

/** The whole table as ranges; for tests, debugging, and the size of an inline tree. */
export function decodePcValueTable(tab: Uint8Array, off: number, entry: number, quantum: number): PcValueRange[] {
  const out: PcValueRange[] = [];
  let p = off;
  let pc = entry;
  let val = -1;
  for (;;) {
    if (p >= tab.length) return out;
    const uv = readUvarint(tab, p);
    if (uv.value === 0 && pc !== entry) return out;
    val = (val + zigzag(uv.value)) | 0;
    const pcd = readUvarint(tab, uv.next);
    p = pcd.next;
    const start = pc;
    pc += pcd.value * quantum;
    out.push({ start, end: pc, value: val });
  }
}

/**
 * A table decoded once: `ends[i]` is the end (exclusive) of row i as an offset from the
 * function's entry, `values[i]` its value. Lookups are then a binary search instead of a
 * walk from the entry, which matters for the long tables of big functions.
 */
export interface DecodedPcValueTable {
  ends: Uint32Array;
  values: Int32Array;
}

// Rows are decoded into these, then copied out at their exact length: one walk, and the
// only allocation is the result.
let scratchEnds = new Uint32Array(1024);
let scratchValues = new Int32Array(1024);

export function decodePcValueTableCompact(tab: Uint8Array, off: number, quantum: number): DecodedPcValueTable {
  let p = off;
  let pc = 0;
  let val = -1;
  let rows = 0;
  for (;;) {
    let b = tab[p++];
    if (b === undefined || (b === 0 && pc !== 0)) break;
    let uv = b & 0x7f;
    for (let shift = 7; (b & 0x80) !== 0; shift += 7) {
      b = tab[p++];
      if (b === undefined) break;
      uv = (uv | ((b & 0x7f) << (shift & 31))) >>> 0;
    }
    b = tab[p++];
    if (b === undefined) break;
    let pcd = b & 0x7f;
    for (let shift = 7; (b & 0x80) !== 0; shift += 7) {
      b = tab[p++];
      if (b === undefined) break;
      pcd = (pcd | ((b & 0x7f) << (shift & 31))) >>> 0;
    }
    val = (val + ((-(uv & 1) ^ (uv >>> 1)) | 0)) | 0;
    pc += pcd * quantum;
    if (rows === scratchEnds.length) {
      const ends = new Uint32Array(rows * 2);
      ends.set(scratchEnds);
      scratchEnds = ends;
      const values = new Int32Array(rows * 2);
      values.set(scratchValues);
      scratchValues = values;
    }
    scratchEnds[rows] = pc;
    scratchValues[rows] = val;
    rows++;
  }
  return { ends: scratchEnds.slice(0, rows), values: scratchValues.slice(0, rows) };
}

/** Value at `offset` bytes past the entry in a decoded table; -1 past its end. */
export function lookupDecoded(t: DecodedPcValueTable, offset: number): number {
  const { ends, values } = t;
  let lo = 0;
  let hi = ends.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((ends[mid] ?? 0) <= offset) lo = mid + 1;
    else hi = mid;
  }
  return lo < ends.length ? (values[lo] ?? -1) : -1;
}
