/**
 * /proc/<pid>/mountinfo, parsed (proc(5)): which mounts sit on a path, and whether a path is
 * the source of one. The kernel escapes space, tab, newline and backslash in paths as octal
 * (`\040`, `\011`, `\012`, `\134`), so a pod directory with a space in it still parses.
 */
import { readFile } from 'node:fs/promises';
import { relative, sep } from 'node:path';

export interface MountEntry {
  id: number;
  parentId: number;
  /** `major:minor` of the filesystem. */
  device: string;
  /** The directory of the filesystem mounted here (not `/` for a bind mount of a subdirectory). */
  root: string;
  mountPoint: string;
  /** Per-mount options (`ro`, `rw`, `nosuid`, …). */
  options: string[];
  fsType: string;
  source: string;
}

/** Undoes the kernel's octal escapes (`\040` → space). */
export function unescapeMountPath(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(Number.parseInt(oct, 8)));
}

/** Parses mountinfo text; a line that does not have the documented shape is skipped. */
export function parseMountInfo(text: string): MountEntry[] {
  const entries: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    const dash = fields.indexOf('-', 6);
    if (dash < 0 || fields.length < dash + 3) continue;
    const [id, parentId, device, root, mountPoint, options] = fields;
    entries.push({
      id: Number(id),
      parentId: Number(parentId),
      device: device!,
      root: unescapeMountPath(root!),
      mountPoint: unescapeMountPath(mountPoint!),
      options: options!.split(','),
      fsType: fields[dash + 1]!,
      source: unescapeMountPath(fields[dash + 2]!),
    });
  }
  return entries;
}

export async function readMountInfo(path = '/proc/self/mountinfo'): Promise<MountEntry[]> {
  return parseMountInfo(await readFile(path, 'utf8'));
}

/** The mounts stacked on exactly this path, in mount order (the last one is what a lookup sees). */
export function mountsAt(entries: MountEntry[], path: string): MountEntry[] {
  return entries.filter((e) => e.mountPoint === path);
}

/** The filesystem and directory within it that `path` names: the mount with the longest matching mount point, the last one on ties. */
export function locate(entries: MountEntry[], path: string): { device: string; root: string } | undefined {
  let best: MountEntry | undefined;
  for (const e of entries) {
    const inside = e.mountPoint === '/' || path === e.mountPoint || path.startsWith(e.mountPoint + sep);
    if (inside && (!best || e.mountPoint.length >= best.mountPoint.length)) best = e;
  }
  if (!best) return undefined;
  const rest = relative(best.mountPoint, path);
  const root = rest === '' ? best.root : best.root === '/' ? `/${rest}` : `${best.root}/${rest}`;
  return { device: best.device, root };
}
