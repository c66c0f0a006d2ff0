import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { renderReadme } from '../../docs/generate.ts';

describe('README.md', () => {
  const text = readFileSync('README.md', 'utf8');
  it('has a configuration reference that matches the code (run `npm run docs` if this fails)', () => {
    expect(renderReadme(text)).toBe(text);
  });
  it('states the two commands a new user needs', () => {
    expect(text).toContain('npm start');
    expect(text).toContain('npm test');
    expect(readFileSync('.ci/run', 'utf8')).toMatch(/^npm test$/m);
  });
});
