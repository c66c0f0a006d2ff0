/**
 * The build information the Go linker writes into every program (what `go version -m` shows):
 * a 32-byte header in `.go.buildinfo` — "\xff Go buildinf:", pointer size, flags — then
 * - flags & 2 (Go 1.18+): the version and the module info as varint-prefixed strings;
 * - otherwise (Go 1.13–1.17): two pointers to Go string headers {data, len} elsewhere.
 * The module info is framed by 16-byte sentinels; inside, lines such as
 * `path\texample.com/app/cmd/app` and `mod\texample.com/app\tv1.2.3\th1:…`.
 */
import { type ElfFile, PT_LOAD } from '../elf/elf-file.ts';
import { readUvarint } from './pcvalue.ts';

export interface GoBuildInfo {
  /** `go1.19.8` and the like. */
  goVersion: string;
  /** Main module (`mod` line). */
  modulePath?: string;
  /** Main package (`path` line). */
  mainPath?: string;
  /** The module info text, sentinels removed ('' when the binary has none). */
  modinfo: string;
}

const MAGIC = Buffer.from('\xff Go buildinf:', 'latin1');
const HEADER_SIZE = 32;
const ALIGN = 16;
const FLAG_BIG_ENDIAN = 1;
const FLAG_INLINE_STRINGS = 2;
const PF_W = 2;
const PF_X = 1;

/** Build info of a Go binary; undefined when the file has none (not Go, or written before 1.13). */
export async function readGoBuildInfo(elf: ElfFile): Promise<GoBuildInfo | undefined> {
  const blob = await findBlob(elf);
  if (blob === undefined) return undefined;
  const ptrSize = blob[14] ?? 0;
  const flags = blob[15] ?? 0;
  let version: Buffer | undefined;
  let mod: Buffer | undefined;
  if ((flags & FLAG_INLINE_STRINGS) !== 0) {
    const v = varintString(blob, HEADER_SIZE);
    if (v === undefined) return undefined;
    version = v.value;
    mod = varintString(blob, v.next)?.value;
  } else {
    if ((flags & FLAG_BIG_ENDIAN) !== 0 || ptrSize !== 8) return undefined; // not a linux/amd64|arm64 layout
    version = await readGoString(elf, Number(blob.readBigUInt64LE(16)));
    mod = await readGoString(elf, Number(blob.readBigUInt64LE(24)));
  }
  if (version === undefined || version.length === 0) return undefined;
  const modinfo = stripSentinels(mod ?? Buffer.alloc(0));
  return { goVersion: version.toString('utf8'), modinfo, ...parseModinfo(modinfo) };
}

/** `path` and `mod` lines of a module info text. */
export function parseModinfo(modinfo: string): { modulePath?: string; mainPath?: string } {
  const out: { modulePath?: string; mainPath?: string } = {};
  for (const line of modinfo.split('\n')) {
    const [key, value] = line.split('\t');
    if (key === 'path' && value !== undefined && value !== '') out.mainPath = value;
    else if (key === 'mod' && value !== undefined && value !== '') out.modulePath = value;
  }
  return out;
}

/** cmd/go/internal/modload's infoStart/infoEnd framing (16 bytes each, a newline before infoEnd). */
function stripSentinels(mod: Buffer): string {
  if (mod.length >= 33 && mod[mod.length - 17] === 0x0a) return mod.subarray(16, mod.length - 16).toString('utf8');
  return '';
}

async function findBlob(elf: ElfFile): Promise<Buffer | undefined> {
  const section = elf.section('.go.buildinfo');
  if (section !== undefined && section.size >= HEADER_SIZE) {
    const data = await elf.readSection(section);
    if (data.subarray(0, MAGIC.length).equals(MAGIC)) return data;
  }
  // No section names: the linker puts the blob at the start of the first writable segment,
  // as debug/buildinfo assumes; look in its first 64 KiB at 16-byte alignment.
  const seg = elf.segments.find((s) => s.type === PT_LOAD && (s.flags & (PF_W | PF_X)) === PF_W && s.filesz > 0);
  if (seg === undefined) return undefined;
  const data = await elf.read(seg.offset, Math.min(seg.filesz, 64 * 1024), 'the data segment');
  for (let i = data.indexOf(MAGIC); i >= 0; i = data.indexOf(MAGIC, i + 1)) {
    if ((seg.vaddr + i) % ALIGN === 0 && data.length - i >= HEADER_SIZE) return data.subarray(i);
  }
  return undefined;
}

function varintString(buf: Buffer, pos: number): { value: Buffer; next: number } | undefined {
  if (pos >= buf.length) return undefined;
  let len;
  try {
    len = readUvarint(buf, pos);
  } catch {
    return undefined;
  }
  if (len.next + len.value > buf.length) return undefined;
  return { value: buf.subarray(len.next, len.next + len.value), next: len.next + len.value };
}

async function readGoString(elf: ElfFile, headerAddr: number): Promise<Buffer | undefined> {
  const hdr = await elf.readVaddr(headerAddr, 16);
  if (hdr === undefined || hdr.length < 16) return undefined;
  const data = Number(hdr.readBigUInt64LE(0));
  const len = Number(hdr.readBigUInt64LE(8));
  if (len > 1 << 20) return undefined; // a version or module list, never megabytes
  const bytes = await elf.readVaddr(data, len);
  return bytes !== undefined && bytes.length === len ? bytes : undefined;
}
