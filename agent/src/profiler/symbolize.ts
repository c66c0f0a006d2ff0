/**
 * Raw stacks → frames. Each process is snapshotted while it runs (its maps, its binary opened
 * through /proc/<pid>/exe so containers' mount namespaces and deleted binaries are no
 * obstacle). Go binaries are symbolized from `.gopclntab` — stripped or not, because only the
 * pclntab knows inlined calls; other code keeps bpftrace's symbol (ELF .symtab/.dynsym), and
 * kernel frames bpftrace's ksym. The result dedupes frames: a profile with 10 000 samples has
 * a few hundred distinct frames, and the fleet link limits a frame to 4 MiB.
 */
import { readFile, readlink, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';

import type { RawFrame, RawStack } from './bpftrace.ts';
import { type ElfLayout, type ElfSegment, withElfFile } from './elf/elf-file.ts';
import { findMapping, type Mapping, parseProcMaps, runtimeAddressToVaddr } from './elf/maps.ts';
import { type GoBinaryInfo, goBinaryInfo } from './golang/binary-info.ts';
import { type GoFrame, GoSymbolizer } from './golang/symbolizer.ts';

export type FrameKind = 'go' | 'native' | 'kernel' | 'unknown';

export interface Frame {
  function: string;
  file: string;
  line: number;
  inlined: boolean;
  kind: FrameKind;
  address: number;
  mapping: string;
}

export interface Sample {
  /** Indexes into frames, leaf first. */
  frames: number[];
  count: number;
  pid: number;
}

export interface ProcessInfo {
  pid: number;
  exe: string;
  isGo: boolean;
  goVersion: string;
  modulePath: string;
  stripped: boolean;
  container: string;
}

export interface SymbolizedProfile {
  frames: Frame[];
  samples: Sample[];
  processes: ProcessInfo[];
  warnings: string[];
}

/** What is known about a binary, shared by every process running it. */
export interface BinaryImage {
  path: string;
  go?: GoBinaryInfo;
  symbolizer?: GoSymbolizer;
  layout?: ElfLayout;
  /** Why it could not be read (reported once as a warning). */
  error?: string;
}

export interface ProcessSnapshot {
  pid: number;
  exe: string;
  comm: string;
  container: string;
  maps: Mapping[];
  /** The main binary (dev:inode of /proc/<pid>/exe), to tell its mappings from libraries'. */
  exeInode?: number;
  binary?: BinaryImage;
}

/** Binaries by dev:inode, opened once per capture (and reused by the next while unchanged). */
export class BinaryCache {
  private readonly images = new Map<string, Promise<BinaryImage>>();

  constructor(private readonly limit = 64) {}

  open(key: string, path: string): Promise<BinaryImage> {
    let image = this.images.get(key);
    if (image === undefined) {
      image = openBinary(path);
      if (this.images.size >= this.limit) this.images.delete(this.images.keys().next().value as string);
      this.images.set(key, image);
    }
    return image;
  }
}

async function openBinary(path: string): Promise<BinaryImage> {
  try {
    return await withElfFile(path, async (elf) => {
      const layout: ElfLayout = { type: elf.type, segments: elf.segments.map((s: ElfSegment) => ({ ...s })) };
      const go = await goBinaryInfo(elf);
      const image: BinaryImage = { path, layout };
      if (go !== undefined) {
        image.go = go;
        if (go.hasPclntab) image.symbolizer = await GoSymbolizer.fromElf(elf);
      }
      return image;
    });
  } catch (e) {
    return { path, error: (e as Error).message };
  }
}

/**
 * Reads what symbolization needs from a running process; undefined if it has exited.
 * Kernel threads (no exe) get a snapshot without binary.
 */
export async function snapshotProcess(pid: number, procRoot: string, cache: BinaryCache, container = ''): Promise<ProcessSnapshot | undefined> {
  const dir = join(procRoot, String(pid));
  let mapsText: string;
  try {
    mapsText = await readFile(join(dir, 'maps'), 'utf8');
  } catch {
    return undefined;
  }
  const comm = (await readFile(join(dir, 'comm'), 'utf8').catch(() => '')).trim();
  const exe = await readlink(join(dir, 'exe')).catch(() => '');
  const snap: ProcessSnapshot = { pid, exe, comm, container, maps: parseProcMaps(mapsText) };
  if (exe === '') return snap;
  try {
    const st = await stat(join(dir, 'exe'));
    snap.exeInode = st.ino;
    snap.binary = await cache.open(`${st.dev}:${st.ino}`, join(dir, 'exe'));
  } catch {
    // exited between the reads: keep the maps
  }
  return snap;
}

export function processInfo(s: ProcessSnapshot): ProcessInfo {
  const go = s.binary?.go;
  return {
    pid: s.pid,
    exe: s.exe || `[${s.comm}]`,
    isGo: go !== undefined,
    goVersion: go?.goVersion ?? '',
    modulePath: go?.modulePath ?? '',
    stripped: go?.stripped ?? false,
    container: s.container,
  };
}

function hex(a: bigint): string {
  return `0x${a.toString(16)}`;
}

/** Frames of one user address, innermost first. `isReturn`: a caller frame (look up pc - 1). */
export function userFrames(raw: RawFrame, isReturn: boolean, proc: ProcessSnapshot | undefined): Frame[] {
  const address = Number(raw.address);
  const mapping = proc ? findMapping(proc.maps, raw.address) : undefined;
  const mappingPath = mapping?.path.replace(/ \(deleted\)$/, '') ?? raw.module ?? '';
  const image = proc?.binary;
  if (mapping !== undefined && image?.symbolizer !== undefined && image.layout !== undefined && mapping.inode === proc?.exeInode) {
    const vaddr = runtimeAddressToVaddr(mapping, raw.address, image.layout);
    if (vaddr !== undefined) {
      const frames: GoFrame[] = image.symbolizer.symbolize(isReturn ? vaddr - 1n : vaddr);
      if (frames.length > 0) {
        return frames.map((f) => ({
          function: f.function,
          file: f.file,
          line: f.line,
          inlined: f.inlined,
          kind: 'go' as const,
          address,
          mapping: mappingPath,
        }));
      }
    }
  }
  if (raw.symbol !== undefined) {
    return [{ function: raw.symbol, file: '', line: 0, inlined: false, kind: 'native', address, mapping: raw.module ?? mappingPath }];
  }
  const where =
    mapping !== undefined && mapping.path !== '' ? `${basename(mappingPath)}+${hex(raw.address - mapping.start + mapping.offset)}` : hex(raw.address);
  return [{ function: where, file: '', line: 0, inlined: false, kind: 'unknown', address, mapping: mappingPath }];
}

export function kernelFrame(raw: RawFrame): Frame {
  return {
    function: raw.symbol ?? hex(raw.address),
    file: '',
    line: 0,
    inlined: false,
    kind: 'kernel',
    address: Number(raw.address),
    mapping: '[kernel.kallsyms]',
  };
}

/** Turns raw stacks into a deduplicated profile: distinct frames once, identical stacks merged. */
export function symbolizeStacks(
  stacks: readonly RawStack[],
  processes: ReadonlyMap<number, ProcessSnapshot>,
  comms: ReadonlyMap<number, string>,
): SymbolizedProfile {
  const frames: Frame[] = [];
  const frameIndex = new Map<string, number>();
  const intern = (f: Frame): number => {
    const key = `${f.kind}\0${f.address}\0${f.function}\0${f.file}\0${f.line}\0${f.inlined ? 1 : 0}\0${f.mapping}`;
    let i = frameIndex.get(key);
    if (i === undefined) {
      i = frames.length;
      frames.push(f);
      frameIndex.set(key, i);
    }
    return i;
  };
  const samples = new Map<string, Sample>();
  const warnings = new Set<string>();
  const seenPids = new Set<number>();
  for (const s of stacks) {
    seenPids.add(s.pid);
    const proc = processes.get(s.pid);
    if (proc?.binary?.error !== undefined) warnings.add(`cannot read ${proc.exe} of pid ${s.pid}: ${proc.binary.error}; its frames keep bpftrace's symbols`);
    const ids: number[] = [];
    for (const k of s.kernel) ids.push(intern(kernelFrame(k)));
    s.user.forEach((u, i) => {
      for (const f of userFrames(u, i > 0, proc)) ids.push(intern(f));
    });
    if (ids.length === 0) {
      ids.push(
        intern({ function: `[${comms.get(s.pid) ?? proc?.comm ?? 'unknown'}]`, file: '', line: 0, inlined: false, kind: 'unknown', address: 0, mapping: '' }),
      );
    }
    const key = `${s.pid}:${ids.join(',')}`;
    const existing = samples.get(key);
    if (existing) existing.count += s.count;
    else samples.set(key, { frames: ids, count: s.count, pid: s.pid });
  }
  const infos: ProcessInfo[] = [];
  for (const pid of [...seenPids].sort((a, b) => a - b)) {
    const p = processes.get(pid);
    if (p === undefined) {
      warnings.add(`pid ${pid} (${comms.get(pid) ?? '?'}) exited before its maps were read; its user frames are addresses`);
      infos.push({ pid, exe: `[${comms.get(pid) ?? 'unknown'}]`, isGo: false, goVersion: '', modulePath: '', stripped: false, container: '' });
    } else {
      infos.push(processInfo(p));
    }
  }
  for (const p of infos) {
    if (!p.isGo) warnings.add(`pid ${p.pid} (${p.exe}) is not a Go program: profiled with native symbols only`);
  }
  return { frames, samples: [...samples.values()], processes: infos, warnings: [...warnings] };
}
