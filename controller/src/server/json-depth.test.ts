import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { nestsDeeperThan } from './json-depth.ts';

/** The depth JSON.parse sees, by walking the decoded value. */
function depthOf(v: unknown): number {
  if (Array.isArray(v)) return 1 + Math.max(0, ...v.map(depthOf));
  if (v !== null && typeof v === 'object') return 1 + Math.max(0, ...Object.values(v).map(depthOf));
  return 0;
}

describe('nestsDeeperThan', () => {
  it('agrees with the decoded depth for any JSON value, brackets and escapes inside strings included', () => {
    const tricky = fc.constantFrom('[', ']', '{', '}', '"', '\\', '\\"', '\\\\', '[[[', '"]"');
    const leaf = fc.oneof(fc.string(), fc.stringMatching(/^[[\]{}"\\]*$/), tricky, fc.integer(), fc.boolean(), fc.constant(null));
    const value = fc.letrec((tie) => ({
      node: fc.oneof(
        { depthSize: 'large', withCrossShrink: true },
        leaf,
        fc.array(tie('node'), { maxLength: 3 }),
        fc.dictionary(fc.oneof(fc.string(), tricky), tie('node'), { maxKeys: 3 }),
      ),
    })).node;
    fc.assert(
      fc.property(value, fc.integer({ min: 0, max: 12 }), (v, limit) => {
        const body = Buffer.from(JSON.stringify(v));
        expect(nestsDeeperThan(body, limit)).toBe(depthOf(v) > limit);
      }),
      { numRuns: 2000 },
    );
  });

  it('stops a 2 MB body of nested arrays at the limit, and leaves malformed JSON to the parser', () => {
    expect(nestsDeeperThan(Buffer.from('['.repeat(2 * 1024 * 1024)), 128)).toBe(true);
    expect(nestsDeeperThan(Buffer.from('['.repeat(128) + ']'.repeat(128)), 128)).toBe(false);
    expect(nestsDeeperThan(Buffer.from('{"a":"unterminated [[[[['), 2)).toBe(false);
  });
});
