/**
 * Where an ELF file's bytes come from: a file read piece by piece (a Go binary can be hundreds
 * of megabytes and the profiler needs a few sections of it), or a buffer already in memory.
 */
import { type FileHandle, open } from 'node:fs/promises';

export interface ByteSource {
  /** Total length in bytes. */
  readonly size: number;
  /** Exactly `length` bytes from `offset`; the caller has checked the range against `size`. */
  read(offset: number, length: number): Promise<Buffer>;
  close(): Promise<void>;
}

export class FileSource implements ByteSource {
  private constructor(
    private readonly handle: FileHandle,
    readonly size: number,
  ) {}

  static async open(path: string): Promise<FileSource> {
    const handle = await open(path, 'r');
    try {
      const { size } = await handle.stat();
      return new FileSource(handle, size);
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.handle.read(buf, done, length - done, offset + done);
      if (bytesRead === 0) break; // the file shrank since open: the caller sees a short buffer
      done += bytesRead;
    }
    return done === length ? buf : buf.subarray(0, done);
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}

export class BufferSource implements ByteSource {
  constructor(private readonly buf: Buffer) {}

  get size(): number {
    return this.buf.length;
  }

  read(offset: number, length: number): Promise<Buffer> {
    return Promise.resolve(this.buf.subarray(offset, offset + length));
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
