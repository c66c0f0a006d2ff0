import { describe, expect, it } from 'vitest';

import { parseJsonEntries } from './json-entries.ts';

describe('parseJsonEntries', () => {
  it('reads what JSON.parse reads, with every member of an object in order, duplicates included', () => {
    const text = '{"a": 1, "a": [true, null, -2.5e3, "x\\n\\u00e9\\"q"], "b": {}, "c": []}';
    expect(parseJsonEntries(text)).toEqual({
      members: [
        ['a', 1],
        ['a', [true, null, -2500, 'x\né"q']],
        ['b', { members: [] }],
        ['c', []],
      ],
    });
  });

  it('refuses what is not one JSON document, with the offset', () => {
    expect(() => parseJsonEntries('{"a": 1} x')).toThrow(/bad JSON at 9: expected the end/);
    expect(() => parseJsonEntries('{"a" 1}')).toThrow(SyntaxError);
    expect(() => parseJsonEntries('{"a": }')).toThrow(/expected a value/);
    expect(() => parseJsonEntries('[1, 2')).toThrow(/expected '\]'/);
  });
});
