import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

describe('generated protocol code', () => {
  it('is up to date with proto/nemutator.proto (run `npm run proto:gen` if this fails)', () => {
    const out = mkdtempSync(join(tmpdir(), 'nemu-proto-'));
    execFileSync('node', ['proto/generate.mjs', out], { stdio: 'pipe' });
    for (const f of ['nemutator.js', 'nemutator.d.ts']) {
      expect(readFileSync(join(out, f), 'utf8'), `proto/gen/${f} is stale`).toBe(readFileSync(join('proto/gen', f), 'utf8'));
    }
  }, 60_000);
});
