/**
 * Mutation ids: ULID-like, 26 Crockford base32 characters, 48-bit millisecond time then
 * 80 bits that are random for a new millisecond and incremented within one, so ids sort in
 * the order they were made (the store lists the log by key).
 */
import { randomFillSync } from 'node:crypto';

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

let lastTime = -1;
let lastRandom: number[] = [];

// Random bytes are drawn 4 KiB at a time: one system call per 256 ids, not one per id.
const pool = Buffer.alloc(4096);
let poolAt = pool.length;

function random16(): number[] {
  if (poolAt + 16 > pool.length) {
    randomFillSync(pool);
    poolAt = 0;
  }
  const out = new Array<number>(16);
  for (let i = 0; i < 16; i++) out[i] = pool[poolAt++]! % 32;
  return out;
}

function encodeTime(ms: number): string {
  let out = '';
  for (let i = 0; i < 10; i++) {
    out = ALPHABET[ms % 32]! + out;
    ms = Math.floor(ms / 32);
  }
  return out;
}

export function mutationId(now = Date.now()): string {
  if (now <= lastTime) {
    // same (or earlier: clock step) millisecond: keep the time, increment the random part
    let i = lastRandom.length - 1;
    while (i >= 0 && lastRandom[i] === 31) lastRandom[i--] = 0;
    if (i >= 0) lastRandom[i]!++;
    now = lastTime;
  } else {
    lastTime = now;
    lastRandom = random16();
  }
  return encodeTime(now) + lastRandom.map((d) => ALPHABET[d]).join('');
}
