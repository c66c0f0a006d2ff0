/**
 * The Dockerfiles cannot be built here (no container engine), so this checks what an image
 * needs from the repository: `npm run build` puts every entry point and every file the
 * programs load at run time into dist/, the runtime dependencies in package.json cover every
 * module the compiled programs load (an image installs `npm ci --omit=dev`), and COPY reads
 * only sources that exist and are not excluded by .dockerignore.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const DOCKERFILES = ['images/controller.Dockerfile', 'images/agent.Dockerfile', 'images/init.Dockerfile'];

interface Instruction {
  op: string;
  args: string;
}
interface Stage {
  from: string;
  name?: string;
  instructions: Instruction[];
}

function parseDockerfile(path: string): Stage[] {
  const text = readFileSync(join(repoRoot, path), 'utf8');
  const lines = text.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim());
  const stages: Stage[] = [];
  for (const line of lines) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([A-Za-z]+)\s+(.*)$/.exec(line);
    if (!m) throw new Error(`${path}: cannot parse line: ${line}`);
    const op = m[1]!.toUpperCase();
    const args = m[2]!.replace(/\s+/g, ' ').trim();
    if (op === 'FROM') {
      const from = /^(?:--platform=\S+ )?(\S+)(?: AS (\S+))?$/i.exec(args);
      if (!from) throw new Error(`${path}: cannot parse FROM ${args}`);
      stages.push({ from: from[1]!, ...(from[2] ? { name: from[2] } : {}), instructions: [] });
    } else {
      const stage = stages.at(-1);
      if (!stage) throw new Error(`${path}: ${op} before FROM`);
      stage.instructions.push({ op, args });
    }
  }
  return stages;
}

const runtime = (stages: Stage[]): Stage => stages.at(-1)!;
const all = (stage: Stage, op: string): string[] => stage.instructions.filter((i) => i.op === op).map((i) => i.args);

function dockerignorePatterns(): string[] {
  return readFileSync(join(repoRoot, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

/** The .dockerignore pattern that excludes `path`, if any (forms used: `name`, `**\/name`, `**\/*.ext`). */
function ignoredBy(path: string, patterns: string[]): string | undefined {
  const segments = path.replace(/\/$/, '').split('/');
  for (const p of patterns) {
    if (p.startsWith('!')) throw new Error('exceptions in .dockerignore are not understood by this test');
    if (p.startsWith('**/')) {
      const name = p.slice(3);
      const re = new RegExp(`^${name.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*')}$`);
      if (segments.some((s) => re.test(s))) return p;
    } else if (segments[0] === p || path === p) {
      return p;
    }
  }
  return undefined;
}

/** Sources of COPY instructions that read the build context (not another stage). */
function contextSources(stages: Stage[]): string[] {
  return stages.flatMap((s) =>
    all(s, 'COPY')
      .filter((a) => !a.startsWith('--from='))
      .flatMap((a) => a.split(' ').filter((w) => !w.startsWith('--')).slice(0, -1)),
  );
}

/** The runtime stage's ENTRYPOINT (exec form: a shell form would not get signals). */
function entrypoint(stage: Stage): string[] {
  const raw = all(stage, 'ENTRYPOINT').at(-1);
  if (!raw) throw new Error('no ENTRYPOINT');
  return JSON.parse(raw) as string[];
}

function jsFiles(dir: string, out: string[] = []): string[] {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) jsFiles(p, out);
    else if (e.name.endsWith('.js')) out.push(p);
  }
  return out;
}

/** An image's /app: package.json, dist/, and node_modules holding only what `npm ci --omit=dev` installs. */
function productionApp(): string {
  const app = mkdtempSync(join(tmpdir(), 'nemu-image-'));
  cpSync(join(repoRoot, 'package.json'), join(app, 'package.json'));
  cpSync(join(repoRoot, 'dist'), join(app, 'dist'), { recursive: true });
  const lock = JSON.parse(readFileSync(join(repoRoot, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean; optional?: boolean }> };
  for (const [path, meta] of Object.entries(lock.packages)) {
    // Top-level packages only: nested ones live inside their parent's directory, linked with it.
    if (!path.startsWith('node_modules/') || path.includes('/node_modules/', 1) || meta.dev) continue;
    const from = join(repoRoot, path);
    if (!existsSync(from)) continue; // an optional package for another platform
    mkdirSync(dirname(join(app, path)), { recursive: true });
    symlinkSync(from, join(app, path));
  }
  return app;
}

let app: string;
beforeAll(() => {
  // What the images' build stage runs.
  execFileSync('npm', ['run', 'build'], { cwd: repoRoot, stdio: 'pipe', timeout: 600_000 });
  app = productionApp();
}, 660_000);
afterAll(() => {
  if (app) rmSync(app, { recursive: true, force: true });
});

describe('images/', () => {
  it('copies only sources that exist in the build context and are not ignored', () => {
    const patterns = dockerignorePatterns();
    const problems: string[] = [];
    for (const file of DOCKERFILES) {
      for (const src of contextSources(parseDockerfile(file))) {
        const ignored = ignoredBy(src, patterns);
        if (ignored) problems.push(`${file}: COPY ${src} is excluded by .dockerignore (${ignored})`);
        if (!existsSync(join(repoRoot, src))) problems.push(`${file}: COPY ${src} does not exist`);
      }
    }
    expect(problems).toEqual([]);
  });

  for (const [file, program] of [
    ['images/controller.Dockerfile', 'controller'],
    ['images/agent.Dockerfile', 'agent'],
  ] as const) {
    it(`${program}: the entry point is in the build output and starts with the production dependencies only`, () => {
      const [node, ...args] = entrypoint(runtime(parseDockerfile(file)));
      expect(node).toBe('node');
      const script = args.at(-1)!;
      expect(script).toBe(`dist/${program}/src/main.js`);
      expect(existsSync(join(repoRoot, script)), `npm run build makes ${script}`).toBe(true);
      // The image's own flags, the production node_modules: --help loads the whole program.
      const r = spawnSync(process.execPath, [...args.slice(0, -1), script, '--help'], { cwd: app, encoding: 'utf8', timeout: 60_000 });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      expect(r.stdout).toContain('--log-format');
    });
  }

  it('dist/ holds the files the compiled programs load at run time', () => {
    // The SO_PEERCRED addon where the compiled agent looks (agent/src/secrets/peercred.ts) and
    // the generated protobuf module next to its importer, the vendored csi.proto the CSI plugin loads.
    for (const f of ['dist/agent/native/peercred/build/Release/peercred.node', 'dist/proto/gen/nemutator.js', 'dist/proto/codec.js', 'dist/agent/src/csi/proto/csi.proto']) {
      expect(existsSync(join(repoRoot, f)), f).toBe(true);
    }
  });

  it('every module the compiled programs load, lazily loaded ones and --log-format pretty included, resolves from the production dependencies', () => {
    // Every compiled module but the entry points (those start the program), then what is only
    // loaded on demand through require: pino-pretty for the pretty log format, yaml, the addon.
    const modules = jsFiles(join(app, 'dist')).filter((f) => !f.endsWith('/main.js') && !f.includes('/proto/gen/'));
    expect(modules.length).toBeGreaterThan(100);
    const script = [
      `for (const m of ${JSON.stringify(modules.map((m) => './' + relative(app, m)))}) await import(m);`,
      "const { createLogger } = await import('./dist/common/src/log.js');",
      "createLogger({ level: 'info', pretty: true }).info('pretty works');",
      "const { loadPeercred } = await import('./dist/agent/src/secrets/peercred.js');",
      'loadPeercred();',
    ].join('\n');
    writeFileSync(join(app, 'load-all.mjs'), script);
    const r = spawnSync(process.execPath, ['load-all.mjs'], { cwd: app, encoding: 'utf8', timeout: 120_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('pretty works');
  });

  it('the init image builds the launcher from its Go sources alone', () => {
    const stages = parseDockerfile('images/init.Dockerfile');
    expect(entrypoint(runtime(stages))[0]).toBe('/nemu-exec');
    for (const f of ['agent/launcher/main.go', 'agent/launcher/go.mod']) expect(existsSync(join(repoRoot, f)), f).toBe(true);
    // npm run build makes the same binary for local use.
    expect(readFileSync(join(repoRoot, 'dist/bin/nemu-exec')).subarray(0, 4).toString('latin1')).toBe('\x7fELF');
  });
});
