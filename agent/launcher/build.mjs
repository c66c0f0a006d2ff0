#!/usr/bin/env node
// `npm run build:launcher`: builds dist/bin/nemu-exec with the installed Go (Debian's
// golang-go), offline, static (CGO_ENABLED=0), stripped. Without Go it says so and skips:
// the init image (images/init.Dockerfile) builds the launcher in its own Go stage.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, '..', '..', 'dist', 'bin', 'nemu-exec');
const probe = spawnSync('go', ['version'], { encoding: 'utf8' });
if (probe.error) {
  console.warn('build:launcher: go not found, nemu-exec not built (apt-get install -y golang-go); the init image builds it itself');
  process.exit(0);
}
const r = spawnSync('go', ['build', '-trimpath', '-ldflags=-s -w', '-o', out, '.'], {
  cwd: here,
  stdio: 'inherit',
  env: { ...process.env, CGO_ENABLED: '0', GOFLAGS: '-buildvcs=false', GOTOOLCHAIN: 'local', GOPROXY: 'off', GOWORK: 'off' },
});
if (r.status !== 0) {
  console.error('NEMU_ERR_BUILD: building nemu-exec failed (see above)');
  process.exit(1);
}
console.log(out);
