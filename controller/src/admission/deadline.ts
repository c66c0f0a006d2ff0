/**
 * One deadline per review, shared by every dependency read on its path (skip rules from the
 * store, dictionary values): whatever a store or Redis client would wait on its own (timeouts,
 * offline queues, retries), the review gives up on its reads at `dictionaryTimeout` after it
 * started and admits the object unchanged.
 */
export class ReviewDeadline {
  private readonly at: number;

  constructor(readonly ms: number) {
    this.at = performance.now() + ms;
  }

  /** Settles as `work` does, or rejects with `late()` once the deadline has passed. */
  race<T>(work: Promise<T>, late: () => Error): Promise<T> {
    const left = this.at - performance.now();
    if (left <= 0) {
      work.catch(() => undefined); // given up on: its rejection is nobody's business now
      return Promise.reject(late());
    }
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(late()), left);
    });
    work.catch(() => undefined);
    return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
  }
}
