/**
 * The Dockerfiles cannot be built here (no container engine), so this checks what can be
 * checked without one: the base images and users the design asks for, entry points that
 * are where `npm run build` puts the programs, and COPY sources that exist in the build
 * context and are not excluded by .dockerignore.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

// Sources other engineers have not written yet. Each is checked like any other as soon as
// it exists; until then its COPY is accepted.
const NOT_YET_WRITTEN = new Set(['agent/launcher/']);

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
const last = (stage: Stage, op: string): string | undefined => all(stage, op).at(-1);
const stageNamed = (stages: Stage[], name: string): Stage => {
  const s = stages.find((x) => x.name === name);
  if (!s) throw new Error(`no stage ${name}`);
  return s;
};

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

function entrypoint(stage: Stage): string[] {
  const raw = last(stage, 'ENTRYPOINT');
  if (!raw) throw new Error('no ENTRYPOINT');
  return JSON.parse(raw) as string[]; // exec form only: a shell form would not get signals
}

/** Where tsc puts `<dir>/<file>.ts`: outDir/<path relative to rootDir>.js. */
function compiledEntry(source: string): string {
  const base = JSON.parse(readFileSync(join(repoRoot, 'tsconfig.json'), 'utf8')) as { compilerOptions: { outDir: string; rootDir: string } };
  const build = JSON.parse(readFileSync(join(repoRoot, 'tsconfig.build.json'), 'utf8')) as { include: string[] };
  expect(base.compilerOptions.rootDir).toBe('.');
  expect(build.include.some((dir) => source.startsWith(`${dir}/`)), `${source} is compiled by tsconfig.build.json`).toBe(true);
  return `${base.compilerOptions.outDir}/${source.replace(/\.ts$/, '.js')}`;
}

const files = ['images/controller.Dockerfile', 'images/agent.Dockerfile', 'images/init.Dockerfile'];

describe('images/', () => {
  it('copies only sources that exist in the build context and are not ignored', () => {
    const patterns = dockerignorePatterns();
    const problems: string[] = [];
    for (const file of files) {
      for (const src of contextSources(parseDockerfile(file))) {
        const ignored = ignoredBy(src, patterns);
        if (ignored) problems.push(`${file}: COPY ${src} is excluded by .dockerignore (${ignored})`);
        if (!existsSync(join(repoRoot, src)) && !NOT_YET_WRITTEN.has(src)) problems.push(`${file}: COPY ${src} does not exist`);
      }
    }
    expect(problems).toEqual([]);
    expect(ignoredBy('node_modules', patterns)).toBe('**/node_modules');
    expect(ignoredBy('agent/src/x.test.ts', patterns)).toBe('**/*.test.ts');
  });

  for (const [file, program] of [
    ['images/controller.Dockerfile', 'controller'],
    ['images/agent.Dockerfile', 'agent'],
  ] as const) {
    it(`${file} builds with the full dependencies and ships only production ones`, () => {
      const stages = parseDockerfile(file);
      const build = stageNamed(stages, 'build');
      expect(build.from).toBe('node:20-bookworm-slim');
      expect(all(build, 'RUN').join('\n')).toMatch(/npm ci\b(?!.*--omit)/);
      expect(all(build, 'RUN').join('\n')).toMatch(/npm run build/);
      expect(all(stageNamed(stages, 'deps'), 'RUN').join('\n')).toMatch(/npm ci --omit=dev/);
      // Node resolves "type": "module" from package.json: without it dist/ would not load.
      expect(all(runtime(stages), 'COPY')).toContain('package.json ./');
      const [node, ...args] = entrypoint(runtime(stages));
      expect(node).toBe('node');
      expect(args.at(-1)).toBe(compiledEntry(`${program}/src/main.ts`));
      // Anything between node and the script is a Node/V8 flag (the agent's: see bench/agent).
      const flags = args.slice(0, -1);
      for (const flag of flags) expect(flag).toMatch(/^--[a-z][a-z0-9-]*(=\S+)?$/);
      if (flags.length > 0) expect(spawnSync(process.execPath, [...flags, '-e', '0'], { encoding: 'utf8' }).stderr).toBe('');
    });
  }

  it('runs the controller as a numeric non-root user on the Node image', () => {
    const stages = parseDockerfile('images/controller.Dockerfile');
    expect(runtime(stages).from).toBe('node:20-bookworm-slim');
    const user = last(runtime(stages), 'USER');
    expect(user).toMatch(/^\d+(:\d+)?$/); // the kubelet can only verify runAsNonRoot for a uid
    expect(Number(user!.split(':')[0])).toBeGreaterThan(0);
  });

  it('builds the agent on Debian with bpftrace and the Node binary from the official image', () => {
    const stages = parseDockerfile('images/agent.Dockerfile');
    const rt = runtime(stages);
    expect(rt.from).toBe('debian:bookworm-slim');
    expect(all(rt, 'RUN').join('\n')).toMatch(/apt-get install -y --no-install-recommends [^\n]*\bbpftrace\b/);
    expect(all(rt, 'COPY')).toContain('--from=node /usr/local/bin/node /usr/local/bin/node');
    expect(stageNamed(stages, 'node').from).toBe('node:20-bookworm-slim');
  });

  it('builds the launcher statically and ships it alone', () => {
    const stages = parseDockerfile('images/init.Dockerfile');
    const build = stageNamed(stages, 'build');
    expect(build.from).toBe('golang:1.22-bookworm');
    expect(all(build, 'COPY')).toContain('agent/launcher/ ./');
    expect(all(build, 'RUN').join('\n')).toMatch(/CGO_ENABLED=0 .*go build/);
    const rt = runtime(stages);
    expect(rt.from).toMatch(/^(gcr\.io\/distroless\/static|scratch)/);
    expect(all(rt, 'COPY')).toEqual(['--from=build /out/nemu-exec /nemu-exec']);
    expect(entrypoint(rt)).toEqual(['/nemu-exec', 'copy', '/nemutator/bin']);
  });
});
