/**
 * The launcher `nemutator run` starts the program through: the same `nemu-exec` an injected pod
 * runs (agent/launcher, Go standard library only). Found at --launcher, $NEMUTATOR_LAUNCHER,
 * dist/bin/nemu-exec (`npm run build:launcher`), or built once from source with the installed
 * Go into <stateDir>/bin.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { NemuError } from '#common/errors.js';

import { ControllerErrorCodes } from '../../errors.ts';

const REPO = fileURLToPath(new URL('../../../../', import.meta.url));
const SOURCE = join(REPO, 'agent', 'launcher');

function newestSource(): number {
  if (!existsSync(SOURCE)) return 0;
  return Math.max(
    ...readdirSync(SOURCE)
      .filter((f) => f.endsWith('.go') || f === 'go.mod')
      .map((f) => statSync(join(SOURCE, f)).mtimeMs),
  );
}

function executable(path: string): boolean {
  try {
    const st = statSync(path);
    return st.isFile() && (st.mode & 0o111) !== 0;
  } catch {
    return false;
  }
}

export function findLauncher(explicit: string, stateDir: string, env: NodeJS.ProcessEnv = process.env): string {
  const given = explicit || env.NEMUTATOR_LAUNCHER || '';
  if (given) {
    if (!executable(given))
      throw new NemuError(ControllerErrorCodes.RUN_LAUNCHER, `the launcher ${given} is not an executable file; build it with npm run build:launcher`);
    return resolve(given);
  }
  const newest = newestSource();
  for (const p of [join(REPO, 'dist', 'bin', 'nemu-exec'), join(resolve(stateDir), 'bin', 'nemu-exec')]) {
    if (executable(p) && statSync(p).mtimeMs >= newest) return p;
  }
  return buildLauncher(join(resolve(stateDir), 'bin', 'nemu-exec'));
}

function buildLauncher(out: string): string {
  if (!existsSync(SOURCE))
    throw new NemuError(ControllerErrorCodes.RUN_LAUNCHER, 'no nemu-exec launcher found and no source to build it from; pass --launcher <path to nemu-exec>');
  mkdirSync(join(out, '..'), { recursive: true, mode: 0o700 });
  const r = spawnSync('go', ['build', '-trimpath', '-ldflags=-s -w', '-o', out, '.'], {
    cwd: SOURCE,
    encoding: 'utf8',
    env: { ...process.env, CGO_ENABLED: '0', GOFLAGS: '-buildvcs=false', GOTOOLCHAIN: 'local', GOPROXY: 'off', GOWORK: 'off' },
  });
  if (r.error)
    throw new NemuError(
      ControllerErrorCodes.RUN_LAUNCHER,
      'the nemu-exec launcher is not built and go is not installed to build it: apt-get install -y golang-go, or npm run build:launcher, or pass --launcher',
    );
  if (r.status !== 0) throw new NemuError(ControllerErrorCodes.RUN_LAUNCHER, `building the nemu-exec launcher failed:\n${r.stderr.trim()}`);
  return out;
}
