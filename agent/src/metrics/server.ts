/**
 * The agent's HTTP endpoint: `/metrics`, the last report as Prometheus text (guarded like the
 * kubelet's, see access.ts), and `/healthz`.
 * The page is streamed to the socket chunk by chunk, as fast as the scraper reads it, so a
 * scrape of a busy node never holds its ~1 MB page in memory at once.
 */
import type { RequestListener, ServerResponse } from 'node:http';

import type { INodeReport } from '#proto/codec.js';

import type { AccessDecision, MetricsAccess } from './access.ts';
import { prometheusChunks } from './exposition.ts';

export interface MetricsEndpoint {
  /** The report to expose: the last one collected (or a fresh one before the first). */
  report: () => Promise<INodeReport>;
  /** Extra fields of the /healthz answer, next to `status: "ok"`. */
  health: () => Record<string, unknown>;
  /** The agent's own counters (prom-client text), appended after the report's families. */
  own?: () => Promise<string>;
}

function* pageChunks(report: INodeReport, own: string): Generator<string, void, undefined> {
  yield* prometheusChunks(report);
  if (own !== '') yield own;
}

/**
 * Writes the chunks as fast as the socket takes them: the next chunk is rendered only when the
 * socket has drained, so one chunk at most waits ahead of it. A plain write/drain loop rather
 * than Readable.from + pipeline: the stream machinery was ~15 % of a scrape's CPU. A scraper
 * that hangs up mid-page ends the rendering.
 */
function writeChunks(res: ServerResponse, chunks: Generator<string, void, undefined>): void {
  const next = (): void => {
    try {
      for (let chunk = chunks.next(); !chunk.done; chunk = chunks.next()) {
        if (!res.write(chunk.value)) {
          res.once('drain', next);
          return;
        }
      }
      res.end();
    } catch (e) {
      res.destroy(e as Error);
    }
  };
  res.once('close', () => {
    res.off('drain', next);
    chunks.return();
  });
  next();
}

/** A refused scrape: the status, and `{code, message}` saying what permission is missing. */
function refuse(res: ServerResponse, decision: Exclude<AccessDecision, { allowed: true }>): void {
  res
    .writeHead(decision.status, {
      'content-type': 'application/json',
      ...(decision.status === 401 ? { 'www-authenticate': 'Bearer realm="nemutator-agent"' } : {}),
    })
    .end(`${JSON.stringify(decision.error)}\n`);
}

/**
 * `access` guards /metrics (see access.ts); without it the page is open. /healthz is always
 * open, for the kubelet's probes. A remembered allow serves the page without waiting.
 */
export function metricsRequestListener(endpoint: MetricsEndpoint, access?: Pick<MetricsAccess, 'check'>): RequestListener {
  const page = (res: ServerResponse): void => {
    void Promise.all([endpoint.report(), endpoint.own?.() ?? '']).then(
      ([report, own]) => {
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
        writeChunks(res, pageChunks(report, own));
      },
      (e: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`collecting metrics failed: ${e.message}\n`),
    );
  };
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ status: 'ok', ...endpoint.health() }));
    } else if (path === '/metrics') {
      const decision = access?.check(req.headers.authorization);
      const answer = (d: AccessDecision): void => (d.allowed ? page(res) : refuse(res, d));
      if (!decision) page(res);
      else if ('then' in decision) void decision.then(answer);
      else answer(decision);
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('the agent serves /metrics and /healthz\n');
    }
  };
}
