// One line of the fault suite's table. Latencies are of the ordinary reviews sent during the
// fault, in milliseconds; `reviewsAnswered` counts those answered 200.
export interface FaultRow {
  scenario: string;
  reviewsAnswered: number;
  reviewsSent?: number;
  /** Mutation ids handed out but missing from the log (scenarios that check it). */
  lost?: number;
  crashes: number;
  p50: number;
  p99: number;
  rssPeakMiB: number;
  recoverSeconds: number;
}

export function formatTable(rows: FaultRow[]): string {
  const n = (v: number | undefined, digits = 0) => (v === undefined || Number.isNaN(v) ? '—' : v.toFixed(digits));
  const lines = [
    '| scenario | reviews answered | lost | crashes | p50 ms | p99 ms | RSS peak MiB | recover s |',
    '|---|---|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.scenario} | ${r.reviewsAnswered}${r.reviewsSent !== undefined ? ` / ${r.reviewsSent}` : ''} | ${n(r.lost)} | ${r.crashes} | ${n(r.p50)} | ${n(r.p99)} | ${n(r.rssPeakMiB)} | ${n(r.recoverSeconds, 2)} |`),
  ];
  return lines.join('\n');
}
