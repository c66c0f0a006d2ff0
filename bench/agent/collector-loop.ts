// The agent's metrics loop alone, as the benchmark runs it in a child process: collect a
// NodeReport every interval, encode it for the fleet link and render /metrics, as the agent
// does. Prints one JSON line per event on stdout for the parent.
import { encodeEnvelope } from '../../proto/codec.ts';
import { renderPrometheus } from '../../agent/src/metrics/exposition.ts';
import { ReportCollector } from '../../agent/src/report.ts';

const [cgroupRoot, intervalArg, secondsArg] = process.argv.slice(2);
if (cgroupRoot === undefined) throw new Error('usage: collector-loop <cgroupRoot> <intervalMs> <seconds>');
const intervalMs = Number(intervalArg ?? 10_000);
const seconds = Number(secondsArg ?? 300);

const collector = new ReportCollector({ nodeName: 'bench-node', cgroupRoot });
const emit = (event: Record<string, unknown>): void => {
  process.stdout.write(`${JSON.stringify(event)}\n`);
};

async function once(): Promise<void> {
  const report = await collector.collect();
  const frame = encodeEnvelope({ report });
  const page = renderPrometheus(report);
  const m = process.memoryUsage();
  emit({
    type: 'collect',
    collectMs: report.collectMs,
    pods: report.pods?.length ?? 0,
    frameBytes: frame.byteLength,
    metricsBytes: page.length,
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
  emit({ type: 'done' });
}, seconds * 1000);
