/**
 * Requests per second per pod on the secrets socket: a token bucket per pod UID, bursts of
 * twice the rate. A bucket that has refilled is the same as no bucket, so buckets idle for a
 * full refill are dropped: the map holds only pods that called within the last two seconds,
 * however many pods come and go on the node.
 */
export class PodRateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly capacity: number;
  /** Milliseconds an empty bucket needs to refill. */
  private readonly refillMs: number;
  private sweptAt = 0;

  /** `perSecond` ≤ 0 = unlimited. */
  constructor(private readonly perSecond: number) {
    this.capacity = perSecond * 2;
    this.refillMs = perSecond > 0 ? (this.capacity / perSecond) * 1000 : 0;
  }

  allow(podUid: string, now = Date.now()): boolean {
    if (this.perSecond <= 0) return true;
    this.sweep(now);
    const b = this.buckets.get(podUid) ?? { tokens: this.capacity, at: now };
    b.tokens = Math.min(this.capacity, b.tokens + ((now - b.at) / 1000) * this.perSecond);
    b.at = now;
    this.buckets.set(podUid, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** Pods with a bucket (for tests and the curious). */
  get size(): number {
    return this.buckets.size;
  }

  /** At most once per refill time: drops the buckets that have refilled since their last call. */
  private sweep(now: number): void {
    if (now - this.sweptAt < this.refillMs) return;
    this.sweptAt = now;
    for (const [uid, b] of this.buckets) if (now - b.at >= this.refillMs) this.buckets.delete(uid);
  }
}
