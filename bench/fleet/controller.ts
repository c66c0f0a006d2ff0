// The controller side of bench/fleet, in its own process so its CPU and memory are its own.
// Talks to the bench over IPC: "stats" → { cpu, rss, peak rss, latencies }.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { loadConfig } from '#common/config.js';
import { silentLogger } from '#common/log.js';
import { startController } from '#controller/app.js';
import { controllerSchema } from '#controller/config.js';
import { SharedTokenAgentAuthenticator } from '#controller/fleet/auth.js';
import { localAuthorizer } from '#controller/server/access.js';
import { StaticTokenAuthenticator } from '#controller/server/auth.js';

const latencies: number[] = [];
const { config } = loadConfig(controllerSchema, {
  program: 'bench',
  argv: [],
  env: {},
  defaults: { host: '127.0.0.1', stateDir: mkdtempSync(join(tmpdir(), 'nemu-bench-fleet-')), webhookPort: 0, apiPort: 0, fleetPort: 0, schedulerPort: 0 },
});
const running = await startController(config, {
  log: silentLogger,
  mode: 'local',
  apiAuth: new StaticTokenAuthenticator('bench-admin'),
  authorizer: localAuthorizer,
  agentAuth: new SharedTokenAgentAuthenticator('bench-agent'),
});
// Time from the frame's arrival (ws 'message' event) to the registry holding it.
running.hub['opts'].onReport = (_node: string, receivedAt: number) => latencies.push(performance.now() - receivedAt);

let cpuMark = process.cpuUsage();
let timeMark = performance.now();

/** The process's peak resident set since it started (VmHWM), in bytes. */
function peakRss(): number {
  const kb = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
  if (kb === undefined) throw new Error('no VmHWM in /proc/self/status: the fleet bench needs Linux procfs');
  return Number(kb) * 1024;
}
process.on('message', (msg: { type: string }) => {
  if (msg.type === 'mark') {
    cpuMark = process.cpuUsage();
    timeMark = performance.now();
    latencies.length = 0;
    process.send!({ type: 'marked' });
  } else if (msg.type === 'stats') {
    const cpu = process.cpuUsage(cpuMark);
    const seconds = (performance.now() - timeMark) / 1000;
    process.send!({
      type: 'stats',
      cores: (cpu.user + cpu.system) / 1e6 / seconds,
      rssBytes: process.memoryUsage().rss,
      peakRssBytes: peakRss(),
      latencies: latencies.slice(),
      connected: running.hub.connectedNodes.length,
      nodes: running.registry.entries().length,
    });
  } else if (msg.type === 'stop') {
    void running.stop().then(() => process.exit(0));
  }
});
process.send!({ type: 'ready', fleetUrl: running.fleetUrl, caPem: running.tls.caPem });
