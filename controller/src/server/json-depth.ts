/**
 * A cheap pre-scan of a JSON body's nesting depth, on the raw bytes, before anything decodes
 * it. `JSON.parse` itself copes with deep nesting, but what comes after it does not: a 2 MB
 * body of `[[[[…` decodes into a million nested arrays (about 100 MB of heap) and makes
 * `JSON.stringify`, the patch diff and every other recursive walk run out of stack. The scan
 * counts brackets outside strings and stops at the first one past the limit; malformed JSON
 * is left for the parser to reject with its own message.
 */
import { ErrorCodes, NemuError } from '#common/errors.js';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_ARRAY = 0x5b;
const OPEN_OBJECT = 0x7b;
const CLOSE_ARRAY = 0x5d;
const CLOSE_OBJECT = 0x7d;

/** Whether `body` nests arrays and objects more than `limit` levels deep (strings are skipped with indexOf, so a large string costs next to nothing). */
export function nestsDeeperThan(body: Buffer, limit: number): boolean {
  let depth = 0;
  const n = body.length;
  for (let i = 0; i < n; i++) {
    const c = body[i];
    if (c === QUOTE) {
      // Skip to the closing quote: the first one preceded by an even number of backslashes.
      let from = i + 1;
      for (;;) {
        const q = body.indexOf(QUOTE, from);
        if (q < 0) return false; // unterminated string: not JSON, the parser says so
        let slashes = 0;
        for (let b = q - 1; b > i && body[b] === BACKSLASH; b--) slashes++;
        if (slashes % 2 === 0) {
          i = q;
          break;
        }
        from = q + 1;
      }
    } else if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
      if (++depth > limit) return true;
    } else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) {
      depth--;
    }
  }
  return false;
}

/** Throws NEMU_ERR_NESTING_TOO_DEEP (400) when `body` nests deeper than `limit`. */
export function assertNesting(body: Buffer, limit: number, what: string): void {
  if (nestsDeeperThan(body, limit)) {
    throw new NemuError(ErrorCodes.NESTING_TOO_DEEP, `${what} nests arrays and objects more than ${limit} levels deep (maxReviewDepth); it was not decoded`, {
      status: 400,
    });
  }
}
