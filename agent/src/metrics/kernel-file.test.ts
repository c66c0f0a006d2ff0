import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';

import { readKernelFile, readKernelRecord } from './kernel-file.ts';

const dir = mkdtempSync(join(tmpdir(), 'nemu-kernel-file-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('kernel files', () => {
  it('reads any regular file whole, smaller or larger than the 64 KiB buffer, with either reader', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 150 * 1024 }), fc.integer({ min: 0, max: 255 }), (size, seed) => {
        const path = join(dir, 'file');
        const text = Array.from({ length: size }, (_, i) => String.fromCharCode((seed + i * 7) % 256)).join('');
        writeFileSync(path, text, 'latin1');
        expect(readKernelFile(path)).toBe(text);
        expect(readKernelRecord(path)).toBe(text);
      }),
      { numRuns: 40 },
    );
  });

  it('is undefined for a file that does not exist, with either reader', () => {
    expect(readKernelFile(join(dir, 'gone', 'cpu.stat'))).toBeUndefined();
    expect(readKernelRecord(join(dir, 'gone', 'cpu.stat'))).toBeUndefined();
  });

  it("reads this machine's one-record cgroup files in one read, and a many-record /proc file page by page", () => {
    const v2 = ['/sys/fs/cgroup', '/sys/fs/cgroup/unified'].find((r) => existsSync(join(r, 'cgroup.controllers')));
    expect(v2, 'this machine has a cgroup v2 hierarchy').toBeDefined();
    // The text of these changes between two reads (counters): compare the fields, not the values.
    const keys = (text: string | undefined) => (text ?? '').split('\n').map((line) => line.split(' ')[0]);
    for (const file of ['cpu.stat', 'memory.stat', 'io.stat']) {
      const path = join(v2!, file);
      if (!existsSync(path)) continue;
      expect(keys(readKernelRecord(path)), file).toEqual(keys(readFileSync(path, 'latin1')));
    }
    // mountinfo is one record per mount, handed out a page at a time.
    expect(readKernelFile('/proc/self/mountinfo')).toBe(readFileSync('/proc/self/mountinfo', 'latin1'));
  });
});
