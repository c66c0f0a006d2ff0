/**
 * Mutation ids: ULID-like, 26 Crockford base32 characters, 48-bit millisecond time then
 * 80 bits that are random for a new millisecond and incremented within one, so ids sort in
 * the order they were made (the store lists the log by key).
 */
import { randomBytes } from 'node:crypto';

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

let lastTime = -1;
let lastRandom: number[] = [];

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
    lastRandom = [...randomBytes(16)].map((b) => b % 32);
  }
  return encodeTime(now) + lastRandom.map((d) => ALPHABET[d]).join('');
}

export function isMutationId(id: string): boolean {
  return /^[0-9A-HJKMNP-TV-Z]{26}$/.test(id);
}

/** Time the id was made. */
export function mutationIdTime(id: string): Date {
  let ms = 0;
  for (const ch of id.slice(0, 10)) ms = ms * 32 + ALPHABET.indexOf(ch);
  return new Date(ms);
}
