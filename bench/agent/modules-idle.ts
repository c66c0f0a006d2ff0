// Second baseline for the agent benchmark: the same modules as the collector loop, loaded and
// idle, its /metrics endpoint listening but never scraped. The loop's RSS minus this one is
// what collecting and serving cost; this minus an idle Node is what the code costs.
import { createServer } from 'node:http';

import { metricsRequestListener } from '#agent/metrics/server.js';

import '#proto/codec.js';
import '#agent/report.js';

const server = createServer(metricsRequestListener({ report: () => Promise.reject(new Error('idle baseline')), health: () => ({}) }));
server.listen(0, '127.0.0.1', () => process.stdout.write(`${JSON.stringify({ type: 'ready' })}\n`));
