// Builds the parts of the project that are not TypeScript, once per test run, so `npm test`
// works on a fresh clone: the peercred N-API addon (node-gyp with the local Node headers)
// and the launcher (Debian's go, CGO_ENABLED=0). Both builds are skipped when up to date.
import { fileURLToPath } from 'node:url';

import { buildGo } from './golang.ts';

export const LAUNCHER_SRC = fileURLToPath(new URL('../../agent/launcher/', import.meta.url));

export async function buildNative(): Promise<void> {
  const { buildPeercred } = await import('../../agent/native/peercred/build.mjs');
  buildPeercred();
}

const FIXTURES = fileURLToPath(new URL('../fixtures/go/', import.meta.url));

/**
 * Every Go binary the tests build, built once before any test runs. With an empty Go build
 * cache the first build also compiles the standard library (12 s on an idle machine, over
 * 30 s beside a running suite), which would otherwise land inside one test's timeout. Builds
 * are cached by source hash, so the tests' own buildGo calls find them. Without Go nothing
 * is built here: the tests that need it fail on their own, naming the package.
 */
export async function prebuildGo(hasGo: boolean): Promise<void> {
  if (!hasGo) return;
  for (const name of ['hotloop', 'inline', 'busy']) {
    await buildGo(FIXTURES + name);
    await buildGo(FIXTURES + name, { stripped: true });
  }
  await buildGo(LAUNCHER_SRC);
  await buildLauncher();
}

/** The launcher binary (static, stripped), built with the harness's offline Go settings. */
export function buildLauncher(): Promise<string> {
  return buildGo(LAUNCHER_SRC, { stripped: true });
}
