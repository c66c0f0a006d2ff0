// One line of the fault suite's table. Latencies are of the ordinary reviews sent during the
// fault, in milliseconds; `reviewsAnswered` counts those answered 200. The baseline is the
// same load in the same run before the fault, where the scenario has one.
export interface FaultRow {
  scenario: string;
  /** NaN for a scenario without review load. */
  reviewsAnswered: number;
  reviewsSent?: number;
  /** Mutation ids handed out but missing from the log (scenarios that check it). */
  lost?: number;
  crashes: number;
  p50: number;
  p99: number;
  baselineP50?: number;
  baselineP99?: number;
  rssPeakMiB: number;
  /** Seconds from the end of the fault until the service mutates/serves again; NaN when it never stopped. */
  recoverSeconds: number;
  /** The scenario's own figures, its target and the verdict. */
  notes?: string;
}

export function formatTable(rows: FaultRow[]): string {
  const n = (v: number | undefined, digits = 0) => (v === undefined || Number.isNaN(v) ? '—' : v.toFixed(digits));
  const lat = (p: number, base: number | undefined) => `${n(p)}${base === undefined ? '' : ` (${n(base)})`}`;
  const lines = [
    '| scenario | reviews answered | lost | crashes | p50 ms (baseline) | p99 ms (baseline) | RSS peak MiB | recover s | notes |',
    '|---|---|---|---|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.scenario} | ${n(r.reviewsAnswered)}${r.reviewsSent !== undefined ? ` / ${r.reviewsSent}` : ''} | ${n(r.lost)} | ${r.crashes} | ${lat(r.p50, r.baselineP50)} | ${lat(r.p99, r.baselineP99)} | ${n(r.rssPeakMiB)} | ${n(r.recoverSeconds, 2)} | ${r.notes ?? ''} |`,
    ),
  ];
  return lines.join('\n');
}
