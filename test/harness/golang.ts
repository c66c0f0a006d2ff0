// Builds the Go fixtures (test/fixtures/go/*) with the system `go`, offline, cached by a hash
// of their sources and build options so repeated runs and parallel tests build once.
import { createHash, randomBytes } from 'node:crypto';
import { copyFile, mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { requireTool, runTool } from './tools.ts';

const TMP = fileURLToPath(new URL('../.tmp/', import.meta.url));
const BUILD_CACHE = join(TMP, 'go-build');

export async function buildGo(srcDir: string, opts: { stripped?: boolean; gcflags?: string; out?: string } = {}): Promise<string> {
  const go = requireTool('go', 'golang-go');
  const src = resolve(srcDir);
  const env = goEnv();
  const version = await goVersion(go, env);

  const hash = createHash('sha256');
  hash.update(JSON.stringify({ version, stripped: opts.stripped ?? false, gcflags: opts.gcflags ?? '' }));
  for (const file of await sourceFiles(src)) {
    hash.update(`\0${relative(src, file)}\0`);
    hash.update(await readFile(file));
  }
  const name = basename(src);
  const cached = join(BUILD_CACHE, `${name}-${hash.digest('hex').slice(0, 16)}`, name);

  if (!(await exists(cached))) {
    await mkdir(join(cached, '..'), { recursive: true });
    // Build beside the final name, then rename: parallel workers never see half a binary.
    const partial = `${cached}.${randomBytes(4).toString('hex')}.partial`;
    const args = ['build', '-trimpath', '-o', partial];
    if (opts.stripped) args.push('-ldflags=-s -w');
    if (opts.gcflags !== undefined) args.push(`-gcflags=${opts.gcflags}`);
    args.push('.');
    try {
      await runTool(go, args, { cwd: src, env, timeoutMs: 300_000 });
      await rename(partial, cached);
    } finally {
      await rm(partial, { force: true });
    }
  }

  if (opts.out === undefined) return cached;
  const out = resolve(opts.out);
  await mkdir(join(out, '..'), { recursive: true });
  await copyFile(cached, out);
  return out;
}

/** No network, no VCS stamping, no toolchain download: only the installed Go and the std lib. */
function goEnv(): NodeJS.ProcessEnv {
  return {
    ...process.env,
    GOCACHE: join(TMP, 'go-cache'),
    GOPATH: join(TMP, 'go-path'),
    GOFLAGS: '-buildvcs=false -mod=mod',
    GOTOOLCHAIN: 'local',
    GOPROXY: 'off',
    GOSUMDB: 'off',
    GOWORK: 'off',
    CGO_ENABLED: '0',
  };
}

let versionOnce: Promise<string> | undefined;
function goVersion(go: string, env: NodeJS.ProcessEnv): Promise<string> {
  versionOnce ??= runTool(go, ['version'], { env }).then((r) => `${go} ${r.stdout.trim()}`);
  return versionOnce;
}

async function sourceFiles(dir: string): Promise<string[]> {
  const files: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) files.push(...(await sourceFiles(path)));
    else if (entry.isFile()) files.push(path);
  }
  return files.sort();
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}
