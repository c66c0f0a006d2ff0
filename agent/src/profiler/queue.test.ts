import { describe, expect, it } from 'vitest';

import { CaptureQueue } from './queue.ts';

describe('CaptureQueue', () => {
  it('runs one capture at a time, in arrival order, and refuses past the waiting limit', async () => {
    const q = new CaptureQueue(2);
    const log: string[] = [];
    let running = 0;
    const job = (name: string, ms: number) => async () => {
      running++;
      expect(running).toBe(1);
      log.push(`start ${name}`);
      await new Promise((r) => setTimeout(r, ms));
      log.push(`end ${name}`);
      running--;
      return name;
    };
    const queued: number[] = [];
    const a = q.run(job('a', 30));
    const b = q.run(job('b', 10), (ahead) => queued.push(ahead));
    const c = q.run(async () => {
      throw new Error('c fails');
    });
    await expect(q.run(job('d', 1))).rejects.toMatchObject({
      code: 'NEMU_ERR_PROFILER_BUSY',
      status: 429,
      message: expect.stringMatching(/already running or waiting/),
    });
    await expect(a).resolves.toBe('a');
    await expect(b).resolves.toBe('b');
    await expect(c).rejects.toThrow('c fails');
    expect(log).toEqual(['start a', 'end a', 'start b', 'end b']);
    expect(queued).toEqual([1]);
    // A failed job does not block the queue.
    await expect(q.run(job('e', 1))).resolves.toBe('e');
  });
});
