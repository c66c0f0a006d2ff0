// Replaces one "## <name>" section of bench/RESULTS.md, leaving the others as they are.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

const FILE = new URL('../RESULTS.md', import.meta.url);

export function writeSection(name: string, body: string): void {
  const text = existsSync(FILE) ? readFileSync(FILE, 'utf8') : '# Benchmark results\n';
  const heading = `## ${name}\n`;
  const start = text.indexOf(heading);
  const section = `${heading}\n${body.trim()}\n\n`;
  let out: string;
  if (start < 0) out = text.trimEnd() + '\n\n' + section;
  else {
    const next = text.indexOf('\n## ', start + heading.length);
    out = text.slice(0, start) + section + (next < 0 ? '' : text.slice(next + 1));
  }
  writeFileSync(FILE, out.trimEnd() + '\n');
}
