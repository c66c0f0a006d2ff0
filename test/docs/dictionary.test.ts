// The refusals docs/dictionary.md shows are the ones the controller gives.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

import { checkEntry } from '#controller/dictionary/dictionary.js';
import { VALUE_RULES, valueRuleFor } from '#controller/dictionary/validate.js';

const doc = readFileSync('docs/dictionary.md', 'utf8');
// "`KEY` = `VALUE` → reason |" in the last column of the table
const examples = [...doc.matchAll(/^\|.*\| `([^`]+)` = `([^`]*)` → ([^|]+?) \|$/gm)].map((m) => [m[1]!, m[2]!, m[3]!] as const);

describe('docs/dictionary.md', () => {
  it('has an example refusal for every key kind', () => {
    expect(new Set(examples.map(([key]) => valueRuleFor(key)))).toEqual(new Set(VALUE_RULES));
  });

  it.each(examples)('%s = %s is refused with "%s"', (key, value, reason) => {
    expect(() => checkEntry(key, value)).toThrow(reason);
  });
});
