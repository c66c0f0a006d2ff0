// Third baseline for the agent benchmark: the idle modules of modules-idle.ts plus the CSI node
// plugin serving on a unix socket (its unary gRPC server on node:http2 listening), never called.
// This minus modules-idle is what serving the plugin costs the agent at rest.
import { createServer } from 'node:http';
import { Registry } from 'prom-client';

import { startCsiServer } from '#agent/csi/server.js';
import { metricsRequestListener } from '#agent/metrics/server.js';
import { silentLogger } from '#common/log.js';

import '#proto/codec.js';
import '#agent/report.js';

const [socketPath, kubeletDir, secretsSocketPath] = process.argv.slice(2);
if (!socketPath || !kubeletDir || !secretsSocketPath) throw new Error('usage: csi-idle <csiSocket> <kubeletDir> <secretsSocket>');
await startCsiServer({ socketPath, kubeletDir, secretsSocketPath, nodeName: 'bench-node', log: silentLogger, registry: new Registry() });
const server = createServer(metricsRequestListener({ report: () => Promise.reject(new Error('idle baseline')), health: () => ({}) }));
server.listen(0, '127.0.0.1', () => process.stdout.write(`${JSON.stringify({ type: 'ready' })}\n`));
