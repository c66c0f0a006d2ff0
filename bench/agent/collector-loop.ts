// The agent's metrics loop alone, as the benchmark runs it in a child process: collect a
// NodeReport every interval and encode it for the fleet link, as the agent does, and serve
// /metrics through the agent's own endpoint (the parent scrapes it after every collect).
// Prints one JSON line per event on stdout for the parent.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

import { metricsRequestListener } from '#agent/metrics/server.js';
import { ReportCollector } from '#agent/report.js';
import { encodeEnvelope, type INodeReport } from '#proto/codec.js';

const [cgroupRoot, intervalArg, secondsArg] = process.argv.slice(2);
if (cgroupRoot === undefined) throw new Error('usage: collector-loop <cgroupRoot> <intervalMs> <seconds>');
const intervalMs = Number(intervalArg ?? 10_000);
const seconds = Number(secondsArg ?? 300);

const collector = new ReportCollector({ nodeName: 'bench-node', cgroupRoot });
let last: INodeReport | undefined;
const server = createServer(metricsRequestListener({ report: async () => last ?? collector.collect(), health: () => ({}) }));
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const metricsUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`;

const emit = (event: Record<string, unknown>): void => {
  process.stdout.write(`${JSON.stringify(event)}\n`);
};
emit({ type: 'listening', metricsUrl });

async function once(): Promise<void> {
  const report = await collector.collect();
  last = report;
  const frame = encodeEnvelope({ report });
  const m = process.memoryUsage();
  emit({
    type: 'collect',
    collectMs: report.collectMs,
    pods: report.pods?.length ?? 0,
    frameBytes: frame.byteLength,
    heapTotalBytes: m.heapTotal,
    heapUsedBytes: m.heapUsed,
    externalBytes: m.external,
  });
}

await once();
emit({ type: 'ready' });
const timer = setInterval(() => {
  once().catch((err: unknown) => {
    emit({ type: 'error', message: String(err) });
    process.exit(1);
  });
}, intervalMs);
setTimeout(() => {
  clearInterval(timer);
  server.close();
  emit({ type: 'done' });
}, seconds * 1000);
