/**
 * Admission control for the webhook itself: how many reviews, and how many bytes of large
 * ones, are worked on at once. A review past either limit is refused at once, before its
 * body is read, rather than queued: a queue holds the memory the limit is there to protect,
 * and kube-apiserver gives up on a review after the webhook's timeoutSeconds anyway.
 *
 * Small reviews (a Pod is a few KiB) count only against the number in flight, so a burst of
 * large reviews cannot starve ordinary ones of the byte budget.
 */
export interface ReviewGateLimits {
  maxInFlight: number;
  maxBytesInFlight: number;
  /** Reviews up to this size are not charged to the byte budget. */
  smallBytes?: number;
}

export interface ReviewTicket {
  /** Charges `bytes` more of this review's body; false when the budget is spent (the review must be refused). */
  grow(bytes: number): boolean;
  /** Gives the slot and the bytes back; idempotent. */
  release(): void;
}

export class ReviewGate {
  private inFlight = 0;
  private bytes = 0;
  private readonly small: number;

  constructor(private readonly limits: ReviewGateLimits) {
    this.small = limits.smallBytes ?? 64 * 1024;
  }

  get reviewsInFlight(): number {
    return this.inFlight;
  }

  get bytesInFlight(): number {
    return this.bytes;
  }

  /**
   * A slot for one review of `declared` bytes (its Content-Length, NaN when unknown), or
   * undefined when the webhook is at its limit.
   */
  enter(declared: number): ReviewTicket | undefined {
    if (this.inFlight >= this.limits.maxInFlight) return undefined;
    let seen = 0;
    let charged = 0;
    const charge = (total: number): boolean => {
      if (total <= this.small || total <= charged) return true;
      const more = total - charged;
      if (this.bytes + more > this.limits.maxBytesInFlight) return false;
      this.bytes += more;
      charged = total;
      return true;
    };
    if (Number.isFinite(declared) && declared > 0 && !charge(declared)) return undefined;
    this.inFlight++;
    let released = false;
    return {
      grow: (n) => {
        seen += n;
        return charge(seen);
      },
      release: () => {
        if (released) return;
        released = true;
        this.inFlight--;
        this.bytes -= charged;
      },
    };
  }
}
