// The controller side of bench/scheduler-extender, in its own process (as deployed: plain
// JavaScript) so the load's CPU is not its own. It holds N nodes in the fleet registry (each
// with a NodeReport of 30 pods, as agents send them), serves the extender, and beside it a
// bare Node HTTPS server with the same certificates and client-certificate check that reads
// the body and answers `[]` — the baseline round trip. Talks over IPC.
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { loadConfig } from '#common/config.js';
import { silentLogger } from '#common/log.js';
import { startController } from '#controller/app.js';
import { controllerSchema } from '#controller/config.js';
import { SharedTokenAgentAuthenticator } from '#controller/fleet/auth.js';
import { ensureSchedulerClientCert } from '#controller/scheduler/extender-setup.js';
import { localAuthorizer } from '#controller/server/access.js';
import { StaticTokenAuthenticator } from '#controller/server/auth.js';
import type { INodeReport } from '#proto/codec.js';

const NODES = Number(process.env.BENCH_SCHED_NODES ?? 5000);
const stateDir = mkdtempSync(join(tmpdir(), 'nemu-bench-sched-'));
const { config } = loadConfig(controllerSchema, {
  program: 'bench',
  argv: [],
  env: {},
  defaults: { host: '127.0.0.1', stateDir, webhookPort: 0, apiPort: 0, fleetPort: 0, schedulerPort: 0, schedulerSeason: 'peak', metricsDefaults: false },
});
const running = await startController(config, {
  log: silentLogger,
  mode: 'local',
  apiAuth: new StaticTokenAuthenticator('bench-admin'),
  authorizer: localAuthorizer,
  agentAuth: new SharedTokenAgentAuthenticator('bench-agent'),
});

/** A node's report as an agent sends it: 16 cores, 64 GiB, 30 pods of 3 workloads; load varies by node. A new object each time, as decoded from a frame. */
function reportFor(i: number): INodeReport {
  return {
    nodeName: `node-${i}`,
    timeUnixMs: Date.now(),
    seq: 1,
    node: {
      cpuCores: 16,
      cpuUsageCores: 2 + (i % 13),
      memoryTotalBytes: 64 * 2 ** 30,
      memoryUsedBytes: (8 + (i % 40)) * 2 ** 30,
      cpuPressure: { someAvg10: i % 7 },
      memoryPressure: { someAvg10: i % 5 },
    },
    pods: Array.from({ length: 30 }, (_, p) => ({
      uid: `uid-${i}-${p}`,
      namespace: 'shop',
      name: `app${p % 3}-7d4b9c6f5-${String(i * 30 + p).padStart(5, 'x')}`,
      qos: 'burstable',
      containers: [{ name: 'app', cpuUsageCores: 0.2, memoryWorkingSetBytes: 300 * 2 ** 20 }],
    })),
  };
}
// The registry as the hub fills it (connected, then reports): the extender reads only the registry.
for (let i = 0; i < NODES; i++) {
  running.registry.connected(`node-${i}`, { agentVersion: 'bench', instanceId: `bench-${i}`, capabilities: [] });
  running.registry.report(`node-${i}`, reportFor(i));
}
// Agents report every 10 s: a tenth of the nodes send a new report each second.
let next = 0;
const churn = setInterval(() => {
  for (let k = 0; k < Math.ceil(NODES / 10); k++, next = (next + 1) % NODES) running.registry.report(`node-${next}`, reportFor(next));
}, 1000);
const client = await ensureSchedulerClientCert(join(stateDir, 'tls'));
const tls = running.tls;
const baseline = createServer({ cert: tls.certPem, key: tls.keyPem, ca: tls.caPem, requestCert: true, rejectUnauthorized: true }, (req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    Buffer.concat(chunks);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('[]');
  });
});
await new Promise<void>((r) => baseline.listen(0, '127.0.0.1', r));

let cpuMark = process.cpuUsage();
/** The extender's own work for one call (facts, scores, placement), without HTTP, JSON or TLS. */
function compute(n: number): { ms: number[]; cpuMicros: number } {
  const names = Array.from({ length: NODES }, (_, i) => `node-${i}`);
  const out: number[] = [];
  const cpu = process.cpuUsage();
  for (let k = 0; k < n; k++) {
    const pod = {
      metadata: { name: `web-7d4b9c6f5-c${k}`, namespace: 'shop', ownerReferences: [{ kind: 'ReplicaSet', name: 'web-7d4b9c6f5', controller: true }] },
      spec: { containers: [{ name: 'web', resources: { requests: { cpu: '500m', memory: '256Mi' } } }] },
    };
    const t = performance.now();
    running.scheduler.prioritize(pod, { form: 'NodeNames', names });
    out.push(performance.now() - t);
  }
  const used = process.cpuUsage(cpu);
  return { ms: out, cpuMicros: used.user + used.system };
}

process.on('message', (msg: { type: string; n?: number }) => {
  if (msg.type === 'compute') {
    process.send!({ type: 'computed', ...compute(msg.n ?? 100) });
  } else if (msg.type === 'mark') {
    cpuMark = process.cpuUsage();
    process.send!({ type: 'marked' });
  } else if (msg.type === 'cpu') {
    const c = process.cpuUsage(cpuMark);
    process.send!({ type: 'cpu', micros: c.user + c.system, placements: running.scheduler.placements.size });
  } else if (msg.type === 'stop') {
    clearInterval(churn);
    baseline.close();
    void running.stop().then(() => process.exit(0));
  }
});
process.send!({
  type: 'ready',
  schedulerUrl: running.schedulerUrl,
  baselineUrl: `https://127.0.0.1:${(baseline.address() as AddressInfo).port}`,
  caPem: tls.caPem,
  certPem: client.certPem,
  keyPem: client.keyPem,
  nodes: running.registry.entries().length,
});
