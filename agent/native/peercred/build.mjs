#!/usr/bin/env node
// Builds peercred.node with the node-gyp npm ships and the Node headers on this machine
// (--nodedir), so nothing is downloaded. Skips the build when the addon is newer than its
// sources. `node agent/native/peercred/build.mjs [--force] [--dist]`; --dist also copies it
// to dist/agent/native/peercred/build/Release/, where the compiled agent looks for it.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const ADDON = join(here, 'build', 'Release', 'peercred.node');

function nodeGyp() {
  try {
    return createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js');
  } catch {
    const prefix = dirname(dirname(process.execPath));
    for (const p of [
      join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
      '/usr/share/nodejs/node-gyp/bin/node-gyp.js',
    ]) {
      if (existsSync(p)) return p;
    }
  }
  throw new Error('NEMU_ERR_BUILD: node-gyp not found (it ships with npm); reinstall npm or `npm i -g node-gyp`');
}

function nodeDir() {
  const prefix = dirname(dirname(process.execPath));
  for (const dir of [process.env.npm_config_nodedir, prefix, '/usr', '/usr/local']) {
    if (dir && existsSync(join(dir, 'include', 'node', 'node_api.h'))) return dir;
  }
  throw new Error(
    'NEMU_ERR_BUILD: Node headers (include/node/node_api.h) not found next to node; install them (Debian: apt-get install -y libnode-dev) or set npm_config_nodedir',
  );
}

export function buildPeercred({ force = false } = {}) {
  const sources = ['peercred.c', 'binding.gyp'].map((f) => statSync(join(here, f)).mtimeMs);
  if (!force && existsSync(ADDON) && statSync(ADDON).mtimeMs >= Math.max(...sources)) return ADDON;
  const r = spawnSync(process.execPath, [nodeGyp(), 'rebuild', `--nodedir=${nodeDir()}`], {
    cwd: here,
    encoding: 'utf8',
    env: { ...process.env, npm_config_nodedir: undefined },
  });
  if (r.status !== 0) {
    throw new Error(`NEMU_ERR_BUILD: building the peercred addon failed (needs python3, make and a C compiler):\n${r.stdout}\n${r.stderr}`);
  }
  return ADDON;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const built = buildPeercred({ force: process.argv.includes('--force') });
  if (process.argv.includes('--dist')) {
    const to = join(here, '..', '..', '..', 'dist', 'agent', 'native', 'peercred', 'build', 'Release');
    mkdirSync(to, { recursive: true });
    copyFileSync(built, join(to, 'peercred.node'));
  }
  console.log(built);
}
