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

/** The launcher binary (static, stripped), built with the harness's offline Go settings. */
export function buildLauncher(): Promise<string> {
  return buildGo(LAUNCHER_SRC, { stripped: true });
}
