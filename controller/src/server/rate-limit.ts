/**
 * Token buckets per caller: `rate` requests a second on average, bursts of `burst`. A caller
 * over its budget is told how long to wait (Retry-After). The map is bounded: idle buckets
 * (full again) are dropped first, so many distinct callers cannot grow it without limit.
 */
export interface RateLimit {
  /** Requests per second; 0 turns the limit off. */
  rate: number;
  burst: number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly limit: RateLimit,
    private readonly opts: { maxKeys?: number; now?: () => number } = {},
  ) {}

  /** 0 when `key` may go ahead (and one token is spent), else the seconds to wait. */
  take(key: string): number {
    if (this.limit.rate <= 0) return 0;
    const now = (this.opts.now ?? Date.now)();
    let b = this.buckets.get(key);
    if (b) {
      b.tokens = Math.min(this.limit.burst, b.tokens + ((now - b.at) / 1000) * this.limit.rate);
      b.at = now;
      this.buckets.delete(key);
    } else {
      // Room is made before the newcomer is added, so it is never the one evicted.
      if (this.buckets.size >= (this.opts.maxKeys ?? 10_000)) this.evict(now);
      b = { tokens: this.limit.burst, at: now };
    }
    this.buckets.set(key, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - b.tokens) / this.limit.rate));
  }

  /** Callers remembered (a caller whose bucket is full again need not be). */
  get size(): number {
    return this.buckets.size;
  }

  /** The seconds `key` would have to wait, without spending anything. */
  peek(key: string): number {
    if (this.limit.rate <= 0) return 0;
    const b = this.buckets.get(key);
    if (!b) return 0;
    const tokens = Math.min(this.limit.burst, b.tokens + (((this.opts.now ?? Date.now)() - b.at) / 1000) * this.limit.rate);
    return tokens >= 1 ? 0 : Math.max(1, Math.ceil((1 - tokens) / this.limit.rate));
  }

  private evict(now: number): void {
    for (const [k, b] of this.buckets) {
      if (b.tokens + ((now - b.at) / 1000) * this.limit.rate >= this.limit.burst) this.buckets.delete(k);
    }
    // Everyone active: drop the least recently seen.
    while (this.buckets.size >= (this.opts.maxKeys ?? 10_000)) this.buckets.delete(this.buckets.keys().next().value!);
  }
}
