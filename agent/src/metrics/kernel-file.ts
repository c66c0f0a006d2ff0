/**
 * Reading the small files the kernel generates on read (procfs, cgroupfs). They are never on
 * a disk, so a synchronous read takes microseconds; with one shared buffer and three syscalls
 * per file it is an order of magnitude cheaper than fs.promises.readFile, which matters at
 * thousands of files per interval, and it never starts libuv's thread pool. Callers yield to
 * the event loop between batches.
 */
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';

const buffer = Buffer.allocUnsafe(64 * 1024);

function read(path: string, oneRecord: boolean): string | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return undefined;
  }
  try {
    let total = 0;
    for (;;) {
      const room = buffer.length - total;
      const n = readSync(fd, buffer, total, room, null);
      total += n;
      if (n === 0 || (oneRecord && n < room)) return buffer.toString('latin1', 0, total);
      // Larger than the buffer (cgroup.procs of thousands of processes, /proc/net/dev with
      // thousands of interfaces): read it whole the ordinary way.
      if (total === buffer.length) return readFileSync(path, 'latin1');
    }
  } catch {
    // EOPNOTSUPP: /proc/pressure/* on a kernel booted with psi=0; ENODEV on a dying cgroup.
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/** The file's text, or undefined when it cannot be read (missing controller, cgroup gone, no PSI). */
export function readKernelFile(path: string): string | undefined {
  return read(path, false);
}

/**
 * A file the kernel renders as one seq_file record: a cgroup interface file such as cpu.stat,
 * memory.stat, io.stat or memory.current (v1: cpuacct.usage, memory.stat, blkio.*). The first
 * read gets it whole, so a read that leaves room in the buffer is the end, and the read that
 * would only return 0 is skipped: a fifth of the syscalls of a collect. Not for files of many
 * records (cgroup.procs, /proc/net/dev, mounts), which the kernel hands out a page at a time.
 */
export function readKernelRecord(path: string): string | undefined {
  return read(path, true);
}
