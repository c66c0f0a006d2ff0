// Plain JavaScript for the benchmark's child, as `npm run build` produces it for production:
// running the agent through tsx would add the loader's ~35 MiB to every RSS sample.
import { copyFile, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';

const RELATIVE_IMPORT = /(?:from|import)\s*\(?\s*['"](\.{1,2}\/[^'"]+)['"]/g;
/** The repository's `#common/…`-style aliases (package.json `imports`), e.g. `from '#agent/report.js'`. */
const ALIAS_IMPORT = /(?:from|import)\s*\(?\s*['"](#[a-z]+)\/([^'"]+)\.js['"]/g;
/** A file a module loads at run time next to itself, e.g. `new URL('./proto/csi.proto', import.meta.url)`. */
const RELATIVE_ASSET = /new URL\(\s*['"](\.{1,2}\/[^'"]+\.(?!ts['"])[a-z]+)['"]\s*,\s*import\.meta\.url\s*\)/g;

/**
 * Transpiles the entries and every relative or aliased module they import (transitively) into outDir,
 * with the files they load next to themselves (RELATIVE_ASSET), keeping the repository layout; outDir/node_modules points at the repository's packages.
 * Returns the compiled entries' paths, in order.
 */
export async function compileForNode(repoRoot: string, entries: string[], outDir: string): Promise<string[]> {
  const aliases = (JSON.parse(await readFile(join(repoRoot, 'package.json'), 'utf8')) as { imports: Record<string, string> }).imports;
  const pending = entries.map((entry) => resolve(repoRoot, entry));
  const done = new Set<string>();
  while (pending.length > 0) {
    const file = pending.pop()!;
    if (done.has(file)) continue;
    done.add(file);
    const source = await readFile(file, 'utf8');
    for (const m of source.matchAll(RELATIVE_IMPORT)) pending.push(resolve(dirname(file), m[1]!));
    for (const m of source.matchAll(RELATIVE_ASSET)) pending.push(resolve(dirname(file), m[1]!));
    for (const m of source.matchAll(ALIAS_IMPORT)) {
      const target = aliases[`${m[1]}/*.js`];
      if (target !== undefined) pending.push(resolve(repoRoot, target.replace('*', m[2]!)));
    }
    const target = join(outDir, relative(repoRoot, file));
    await mkdir(dirname(target), { recursive: true });
    if (!file.endsWith('.ts')) {
      await copyFile(file, target);
      continue;
    }
    const { outputText } = ts.transpileModule(source, {
      fileName: file,
      compilerOptions: {
        module: ts.ModuleKind.ES2022,
        target: ts.ScriptTarget.ES2022,
        rewriteRelativeImportExtensions: true,
        verbatimModuleSyntax: true,
        esModuleInterop: true,
      },
    });
    await writeFile(target.replace(/\.ts$/, '.js'), outputText);
  }
  // The aliases point at the compiled files here, as dist/package.json does for `npm run build`.
  const imports = Object.fromEntries(Object.entries(aliases).map(([alias, target]) => [alias, target.replace(/\.ts$/, '.js')]));
  await writeFile(join(outDir, 'package.json'), JSON.stringify({ type: 'module', imports }));
  await symlink(join(repoRoot, 'node_modules'), join(outDir, 'node_modules'), 'dir');
  return entries.map((entry) => join(outDir, entry.replace(/\.ts$/, '.js')));
}
