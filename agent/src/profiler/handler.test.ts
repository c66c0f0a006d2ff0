import { describe, expect, it } from 'vitest';

import { fitFrame } from './handler.ts';

describe('fitFrame', () => {
  it('leaves a profile that fits alone, and trims the lightest stacks of one that does not', () => {
    const frames = Array.from({ length: 2000 }, (_, i) => ({
      function: `pkg.f${i}_${'x'.repeat(40)}`,
      file: '/src/f.go',
      line: i,
      inlined: false,
      kind: 'go',
      address: i,
      mapping: '/bin/app',
    }));
    const samples = Array.from({ length: 2000 }, (_, i) => ({ frames: [i, (i + 1) % 2000, (i + 2) % 2000], count: i + 1, pid: 1 }));
    const result = { frames, samples, processes: [], hz: 49, startedUnixMs: 0, durationMs: 1000, warnings: [] };
    expect(fitFrame(result)).toBe(result);
    const fitted = fitFrame(result, 100_000);
    expect(fitted.samples!.length).toBeLessThan(2000);
    expect(fitted.samples![0]!.count).toBe(2000); // the heaviest stack is kept
    // Frame indexes still point at the same functions.
    expect(fitted.frames![fitted.samples![0]!.frames![0]!]!.function).toBe(frames[1999]!.function);
    expect(fitted.warnings!.at(-1)).toMatch(/lightest stacks \(\d+ of 2001000 samples\) were left out; use a lower hz/);
  });
});
