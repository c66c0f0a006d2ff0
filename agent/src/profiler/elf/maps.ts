/**
 * From a sampled address in a process to an address in its binary: `/proc/<pid>/maps` says
 * which file (and which offset of it) is mapped where; the ELF program headers say which
 * virtual address that file offset has. Addresses are bigints: the kernel's [vsyscall] page
 * (0xffffffffff600000) does not fit in a double.
 */
import { type ElfLayout, type ElfSegment, ET_EXEC, PT_LOAD } from './elf-file.ts';

export interface Mapping {
  start: bigint;
  /** Exclusive. */
  end: bigint;
  /** `r-xp` and the like. */
  perms: string;
  /** File offset mapped at `start`. */
  offset: bigint;
  dev: string;
  inode: number;
  /** File path, `[heap]`, `[vdso]`…, or '' for an anonymous mapping; may end in ` (deleted)`. */
  path: string;
}

const MAPS_LINE = /^([0-9a-f]+)-([0-9a-f]+)\s+(\S{4})\s+([0-9a-f]+)\s+(\S+)\s+(\d+)(?:\s+(.*))?$/i;

/** Parses the text of /proc/<pid>/maps; lines that do not match the format are left out. */
export function parseProcMaps(text: string): Mapping[] {
  const out: Mapping[] = [];
  for (const line of text.split('\n')) {
    const m = MAPS_LINE.exec(line.trim());
    if (m === null) continue;
    out.push({
      start: BigInt(`0x${m[1]}`),
      end: BigInt(`0x${m[2]}`),
      perms: m[3] ?? '',
      offset: BigInt(`0x${m[4]}`),
      dev: m[5] ?? '',
      inode: Number(m[6]),
      path: m[7] ?? '',
    });
  }
  return out;
}

/** The mapping that contains addr (maps are sorted by address, as the kernel writes them). */
export function findMapping(maps: readonly Mapping[], addr: bigint | number): Mapping | undefined {
  const a = BigInt(addr);
  let lo = 0;
  let hi = maps.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const m = maps[mid] as Mapping;
    if (a < m.start) hi = mid - 1;
    else if (a >= m.end) lo = mid + 1;
    else return m;
  }
  // Not sorted after all (a hand-made list): fall back to a scan.
  return maps.find((m) => a >= m.start && a < m.end);
}

/** Virtual address of a file offset according to the loadable segments; undefined if unmapped. */
export function fileOffsetToVaddr(segments: readonly ElfSegment[], fileOffset: bigint | number): bigint | undefined {
  const off = BigInt(fileOffset);
  // The file image first; then the rest of the segment's memory image, which the kernel maps
  // from the same pages (the tail of the last page, the start of .bss).
  for (const size of ['filesz', 'memsz'] as const) {
    for (const seg of segments) {
      if (seg.type !== PT_LOAD) continue;
      const start = BigInt(seg.offset);
      if (off >= start && off < start + BigInt(seg[size])) return BigInt(seg.vaddr) + (off - start);
    }
  }
  return undefined;
}

/**
 * The ELF virtual address of a runtime address inside `mapping` of that ELF file.
 * A fixed-address executable (ET_EXEC, Go's default on amd64) is loaded at its link addresses,
 * so vaddr = address. A PIE (ET_DYN) is loaded at a random base:
 * vaddr = address - mapping.start + mapping.offset - segment.offset + segment.vaddr.
 */
export function runtimeAddressToVaddr(mapping: Mapping, addr: bigint | number, elf: ElfLayout): bigint | undefined {
  const a = BigInt(addr);
  if (a < mapping.start || a >= mapping.end) return undefined;
  if (elf.type === ET_EXEC) return a;
  return fileOffsetToVaddr(elf.segments, a - mapping.start + mapping.offset);
}
