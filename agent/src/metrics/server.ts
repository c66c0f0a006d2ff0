/**
 * The agent's HTTP endpoint: `/metrics`, the last report as Prometheus text, and `/healthz`.
 * The page is streamed to the socket chunk by chunk, as fast as the scraper reads it, so a
 * scrape of a busy node never holds its ~1 MB page in memory at once.
 */
import type { RequestListener } from 'node:http';
import { pipeline, Readable } from 'node:stream';
import type { INodeReport } from '../../../proto/codec.ts';
import { prometheusChunks } from './exposition.ts';

export interface MetricsEndpoint {
  /** The report to expose: the last one collected (or a fresh one before the first). */
  report: () => Promise<INodeReport>;
  /** Extra fields of the /healthz answer, next to `status: "ok"`. */
  health: () => Record<string, unknown>;
}

export function metricsRequestListener(endpoint: MetricsEndpoint): RequestListener {
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ status: 'ok', ...endpoint.health() }));
    } else if (path === '/metrics') {
      void endpoint.report().then(
        (report) => {
          res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
          // One chunk rendered ahead of the socket at most. An error here is the scraper
          // hanging up mid-page: pipeline has already closed both ends, nothing is left to do.
          pipeline(Readable.from(prometheusChunks(report), { highWaterMark: 1 }), res, () => undefined);
        },
        (e: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`collecting metrics failed: ${e.message}\n`),
      );
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('the agent serves /metrics and /healthz\n');
    }
  };
}
