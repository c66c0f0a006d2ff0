/**
 * "Is this a Go program, and which one?" — from `.go.buildinfo` (version, main module) and
 * the presence of Go's pclntab, which even `-ldflags='-s -w'` keeps.
 */
import { type ElfFile, SHT_SYMTAB, withElfFile } from '../elf/elf-file.ts';
import { readGoBuildInfo } from './buildinfo.ts';
import { locatePclntab } from './locate.ts';
import { pclntabMagicGoVersions } from './pclntab.ts';

export interface GoBinaryInfo {
  /** `go1.19.8`; `unknown (go1.20+)` when only the pclntab tells it is Go. */
  goVersion: string;
  /** Main module path (the `mod` line of the build info). */
  modulePath?: string;
  /** Main package path (the `path` line). */
  mainPath?: string;
  /** No .symtab: built with `-s` or stripped afterwards. */
  stripped: boolean;
  hasPclntab: boolean;
}

/** Go facts of the ELF file at path; undefined when it is not a Go program. ELF errors throw. */
export function readGoBinaryInfo(path: string): Promise<GoBinaryInfo | undefined> {
  return withElfFile(path, goBinaryInfo);
}

export async function goBinaryInfo(elf: ElfFile): Promise<GoBinaryInfo | undefined> {
  const [build, pclntab] = await Promise.all([readGoBuildInfo(elf), locatePclntab(elf)]);
  if (build === undefined && pclntab === undefined) return undefined;
  const magic = pclntab?.data.readUInt32LE(0);
  const info: GoBinaryInfo = {
    goVersion: build?.goVersion ?? `unknown (${magic === undefined ? 'no pclntab' : pclntabMagicGoVersions(magic)})`,
    stripped: !elf.sections.some((s) => s.type === SHT_SYMTAB),
    hasPclntab: pclntab !== undefined,
  };
  if (build?.modulePath !== undefined) info.modulePath = build.modulePath;
  if (build?.mainPath !== undefined) info.mainPath = build.mainPath;
  return info;
}
