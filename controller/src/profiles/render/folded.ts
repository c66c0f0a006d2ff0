/** Folded stacks (Brendan Gregg's format): `root;…;leaf count`, one line per distinct stack. */
import { type ProfileData, rootFirstStacks } from '../model.ts';

export function renderFolded(data: ProfileData): string {
  const merged = new Map<string, number>();
  for (const s of rootFirstStacks(data)) {
    const key = s.names.join(';');
    merged.set(key, (merged.get(key) ?? 0) + s.count);
  }
  return [...merged]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k} ${v}\n`)
    .join('');
}

/** Parses folded text back (for tests and for diffing folded files). */
export function parseFolded(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const i = line.lastIndexOf(' ');
    if (i <= 0) continue;
    const n = Number(line.slice(i + 1));
    if (Number.isFinite(n)) out.set(line.slice(0, i), (out.get(line.slice(0, i)) ?? 0) + n);
  }
  return out;
}
