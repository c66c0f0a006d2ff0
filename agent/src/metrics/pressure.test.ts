import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { parsePressure, readPressure } from './pressure.ts';

describe('pressure stall information', () => {
  it('parses some and full lines', () => {
    const text = 'some avg10=1.32 avg60=1.89 avg300=2.44 total=15204636\nfull avg10=0.20 avg60=3.64 avg300=1.79 total=7588192\n';
    expect(parsePressure(text)).toEqual({
      someAvg10: 1.32,
      someAvg60: 1.89,
      someAvg300: 2.44,
      someTotalUs: 15204636,
      fullAvg10: 0.2,
      fullAvg60: 3.64,
      fullAvg300: 1.79,
      fullTotalUs: 7588192,
    });
  });

  it('leaves full absent for cpu on kernels before 5.13 (no full line)', () => {
    expect(parsePressure('some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n')).toEqual({ someAvg10: 0, someAvg60: 0, someAvg300: 0, someTotalUs: 0 });
  });

  it('is undefined for text that holds no pressure line', () => {
    expect(parsePressure('')).toBeUndefined();
    expect(parsePressure('some avg10=x\n')).toBeUndefined();
  });

  it('reads fixture files and gives undefined for a missing one', async () => {
    const root = await mkdtemp(join(tmpdir(), 'nemu-psi-'));
    try {
      await mkdir(join(root, 'pressure'));
      await writeFile(join(root, 'pressure', 'cpu'), 'some avg10=5.50 avg60=2.00 avg300=0.75 total=123456\n');
      expect(readPressure(root, 'cpu')).toEqual({ someAvg10: 5.5, someAvg60: 2, someAvg300: 0.75, someTotalUs: 123456 });
      expect(readPressure(root, 'io')).toBeUndefined();
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('reads this machine’s /proc/pressure when the kernel has PSI', async () => {
    for (const resource of ['cpu', 'memory', 'io'] as const) {
      const p = readPressure('/proc', resource);
      if (!existsSync(`/proc/pressure/${resource}`)) {
        expect(p).toBeUndefined();
        continue;
      }
      expect(p?.someAvg10).toBeGreaterThanOrEqual(0);
      expect(p?.someAvg10).toBeLessThanOrEqual(100);
      expect(p?.someTotalUs).toBeGreaterThanOrEqual(0);
      // memory and io always have a full line.
      if (resource !== 'cpu') expect(p?.fullTotalUs).toBeGreaterThanOrEqual(0);
    }
  });
});
