import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

import { renderReadme } from '../../docs/generate.ts';

describe('README.md', () => {
  const text = readFileSync('README.md', 'utf8');
  it('links a configuration reference that matches the code (run `npm run docs` if this fails)', () => {
    const reference = readFileSync('docs/configuration.md', 'utf8');
    expect(renderReadme(reference)).toBe(reference);
    expect(text).toContain('(docs/configuration.md)');
  });
  it('states the two commands a new user needs', () => {
    expect(text).toContain('npm start');
    expect(text).toContain('npm test');
    expect(readFileSync('.ci/run', 'utf8')).toMatch(/^npm test$/m);
  });
});
