// A stand-in agent for tests of the controller's side of the fleet link: the real
// FleetClient with test-friendly timings and a minimal report.
import { FleetClient, type FleetClientOptions } from '#agent/fleet/client.js';
import { silentLogger } from '#common/log.js';
import type { RunningController } from '#controller/app.js';

/** A FleetClient for `c` (not started), with `overrides` on top of quiet, slow-to-retry defaults. */
export function standInAgent(
  c: Pick<RunningController, 'fleetUrl' | 'tls'>,
  nodeName: string,
  token: string,
  overrides: Partial<FleetClientOptions> = {},
): FleetClient {
  return new FleetClient({
    url: c.fleetUrl,
    ca: c.tls.caPem,
    token: () => token,
    nodeName,
    version: 'test',
    log: silentLogger,
    collect: async () => ({ nodeName }),
    reportIntervalMs: 60_000,
    heartbeatMs: 5000,
    reconnectMinMs: 10_000,
    reconnectMaxMs: 10_000,
    queueReports: 2,
    maxFrameBytes: 1 << 20,
    ...overrides,
  });
}
