// Second baseline for the agent benchmark: the same modules as the collector loop, loaded and
// idle. The loop's RSS minus this one is what collecting costs; this minus an idle Node is
// what the code costs.
import '../../proto/codec.ts';
import '../../agent/src/metrics/exposition.ts';
import '../../agent/src/report.ts';

setInterval(() => undefined, 1 << 30);
process.stdout.write(`${JSON.stringify({ type: 'ready' })}\n`);
