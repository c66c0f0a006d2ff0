import { describe, expect, it } from 'vitest';

import { PodRateLimiter } from './rate-limit.ts';

describe('PodRateLimiter', () => {
  it('allows a burst of twice the rate per pod, then refuses that pod only', () => {
    const limiter = new PodRateLimiter(5);
    const t = 1_000_000;
    const allowed = Array.from({ length: 12 }, () => limiter.allow('a', t)).filter(Boolean).length;
    expect(allowed).toBe(10);
    expect(limiter.allow('b', t)).toBe(true);
    // One token back after 1/5 s.
    expect(limiter.allow('a', t + 200)).toBe(true);
    expect(limiter.allow('a', t + 200)).toBe(false);
  });

  it('stays bounded by the pods that called within a refill time, however many pods come and go', () => {
    const limiter = new PodRateLimiter(10);
    let t = 1_000_000;
    for (let i = 0; i < 100_000; i++) {
      limiter.allow(`pod-${i}`, t);
      t += 1; // 1000 new pods per second, each calling once
    }
    // Refill time is 2 s: at most ~2 s worth of pods (plus one sweep period) have a bucket.
    expect(limiter.size).toBeLessThanOrEqual(4_000);
    expect(limiter.size).toBeGreaterThan(0);
  });

  it('does not forget a pod that is still being limited', () => {
    const limiter = new PodRateLimiter(1);
    const t = 1_000_000;
    limiter.allow('z', t - 1_000); // the last sweep was then
    expect(limiter.allow('a', t)).toBe(true);
    expect(limiter.allow('a', t)).toBe(true);
    expect(limiter.allow('a', t)).toBe(false);
    // "b" calling triggers a sweep: "z" (idle 2.5 s) goes, "a" (idle 1.5 s, bucket not refilled) stays.
    expect(limiter.allow('b', t + 1_500)).toBe(true);
    expect(limiter.size).toBe(2);
    expect(limiter.allow('a', t + 1_500)).toBe(true);
    expect(limiter.allow('a', t + 1_500)).toBe(false);
  });

  it('is off at rate 0', () => {
    const limiter = new PodRateLimiter(0);
    for (let i = 0; i < 1000; i++) expect(limiter.allow('a')).toBe(true);
    expect(limiter.size).toBe(0);
  });
});
