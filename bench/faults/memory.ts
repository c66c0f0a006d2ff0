// Fault scenario "memory": what anyone who reaches the webhook port can send. 16 concurrent
// deeply nested 2 MB reviews and 48 concurrent 2.9 MB ordinary reviews, three waves, against
// local mode run as the image runs it (tsx here, with the Deployment's NODE_OPTIONS heap cap),
// with ordinary reviews every 25 ms beside them. The row says whether the process stayed up,
// its RSS peak against the 512 MiB container limit, and the ordinary reviews' latency.
import { hostileWave, percentile } from '#test/harness/hostile-reviews.js';
import { startLocalProcess } from '#test/harness/local-process.js';

import type { FaultRow } from './row.ts';

/** The Deployment's heap cap (manifests/controller/deployment.yaml). */
export const DEPLOYMENT_NODE_OPTIONS = '--max-old-space-size=320';

export async function memoryScenario(opts: { rounds?: number; flags?: string[] } = {}): Promise<FaultRow & { hostileStatuses: Record<string, number> }> {
  const proc = await startLocalProcess(opts.flags ?? [], { NODE_OPTIONS: DEPLOYMENT_NODE_OPTIONS });
  try {
    const run = await hostileWave(proc.webhookUrl, {
      nested: 16,
      nestedBytes: 2 * 1024 * 1024,
      large: 48,
      largeBytes: Math.round(2.9 * 1024 * 1024),
      rounds: opts.rounds ?? 3,
      everyMs: 25,
    });
    const ok = run.ordinary.filter((a) => a.status === 200);
    const hostileStatuses: Record<string, number> = {};
    for (const a of run.hostile) hostileStatuses[String(a.status)] = (hostileStatuses[String(a.status)] ?? 0) + 1;
    return {
      scenario: 'memory: 16 nested 2 MB + 48 × 2.9 MB reviews at once, ×3',
      reviewsAnswered: ok.length,
      reviewsSent: run.ordinary.length,
      crashes: proc.exited() ? 1 : 0,
      p50: percentile(
        ok.map((a) => a.ms),
        50,
      ),
      p99: percentile(
        ok.map((a) => a.ms),
        99,
      ),
      rssPeakMiB: proc.peakRssMiB(),
      recoverSeconds: run.recoverSeconds,
      hostileStatuses,
    };
  } finally {
    await proc.kill();
  }
}
