// The benchmarks run the agent as plain JavaScript (bench/lib/compile.ts), as `npm run build`
// ships it. A compile that misses a module — the #common/… aliases once did — leaves every
// benchmark dying at its first import, so this runs one of their children for real.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, expect, it } from 'vitest';

import { compileForNode } from '../../bench/lib/compile.ts';

const REPO = resolve(import.meta.dirname, '../..');
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

it('compiles the agent with its aliased imports, and the compiled agent starts far enough to print its help', async () => {
  const out = mkdtempSync(join(tmpdir(), 'nemu-compile-'));
  dirs.push(out);
  const [main] = await compileForNode(REPO, ['agent/src/main.ts'], out);
  const r = spawnSync(process.execPath, ['--no-opt', main!, '--help'], { encoding: 'utf8', timeout: 30_000 });
  expect(r.stderr).not.toMatch(/ERR_PACKAGE_IMPORT_NOT_DEFINED|ERR_MODULE_NOT_FOUND/);
  expect(r.status).toBe(0);
  expect(r.stdout).toMatch(/--cgroup-root/);
});
