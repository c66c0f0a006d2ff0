/**
 * One capture per node at a time: perf events and BPF maps are node-wide resources, and two
 * samplers would each distort what the other measures. Later requests wait their turn (FIFO);
 * past `maxWaiting` they are refused instead of piling up behind hour-long queues.
 */
import { ErrorCodes, NemuError } from '#common/errors.js';

export class CaptureQueue {
  private tail: Promise<unknown> = Promise.resolve();
  private waiting = 0;
  private active = 0;

  constructor(private readonly maxWaiting = 8) {}

  /** Requests ahead of a new one (running + waiting). */
  get depth(): number {
    return this.active + this.waiting;
  }

  /** Runs job when every earlier job has finished; `onQueued` learns its position if it must wait. */
  run<T>(job: () => Promise<T>, onQueued?: (ahead: number) => void): Promise<T> {
    if (this.depth >= this.maxWaiting + 1) {
      return Promise.reject(
        new NemuError(ErrorCodes.PROFILER_BUSY, `${this.depth} captures are already running or waiting on this node; try again later`, { status: 429 }),
      );
    }
    if (this.depth > 0) onQueued?.(this.depth);
    this.waiting++;
    const result = this.tail.then(async () => {
      this.waiting--;
      this.active++;
      try {
        return await job();
      } finally {
        this.active--;
      }
    });
    this.tail = result.catch(() => undefined);
    return result;
  }
}
