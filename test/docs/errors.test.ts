// Every error code the programs can emit is in the catalogue users read.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

function sources(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (name === 'node_modules' || name === 'build' || name === 'gen') continue;
    if (statSync(p).isDirectory()) sources(p, out);
    else if (/\.(ts|go|c)$/.test(name) && !/\.test\.ts$/.test(name)) out.push(p);
  }
  return out;
}

describe('docs/errors.md', () => {
  it('lists every NEMU_ERR_* code used by the controller, the agent, the launcher and the CLI', () => {
    const catalogue = readFileSync('docs/errors.md', 'utf8');
    const used = new Set<string>();
    for (const file of ['agent', 'controller', 'common', 'proto'].flatMap((d) => sources(d))) {
      // A code ends in a letter or digit; `NEMU_ERR_PROFILER_` alone is a prefix used to build one.
      for (const m of readFileSync(file, 'utf8').matchAll(/NEMU_ERR_[A-Z0-9_]*[A-Z0-9](?![A-Z0-9_])/g)) used.add(m[0]);
    }
    expect(used.size).toBeGreaterThan(20);
    const missing = [...used].filter((c) => !catalogue.includes('`' + c + '`')).sort();
    expect(missing, 'add these to docs/errors.md').toEqual([]);
  });
});
