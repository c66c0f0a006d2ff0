// Wall-clock bounds for tests on a shared, noisy machine. A test keeps the behaviour check
// ("the rotation reaches the workload") with a bound that grows with how slow this machine is
// right now, measured in the same run; the tight numbers live in bench/.

/** Median wall time of `runs` calls of `op`, in ms. */
export async function medianMs(op: () => Promise<unknown>, runs = 5): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await op();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

/**
 * `nominalMs` (the documented figure, met on an idle machine) plus `factor` times a baseline
 * operation of the same path measured just before: a loaded machine slows both.
 */
export function boundMs(nominalMs: number, baselineMs: number, factor = 20): number {
  return Math.round(nominalMs + factor * baselineMs);
}
