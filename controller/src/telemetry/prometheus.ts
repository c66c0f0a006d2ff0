/**
 * A small client for Prometheus' HTTP API (`/api/v1/query`, `/api/v1/query_range`). Queries
 * are sent as form-encoded POSTs (long PromQL with season filters stays out of the URL),
 * each with a timeout, and every failure becomes a NemuError that says what to check.
 * It counts the queries it issues: the telemetry refresh promises a fixed number per
 * refresh whatever the cluster size, and the bench checks it.
 */
import { NemuError } from '#common/errors.js';

import { ControllerErrorCodes } from '../errors.ts';

export interface InstantSample {
  labels: Record<string, string>;
  value: number;
}

export interface RangeSeries {
  labels: Record<string, string>;
  /** [unix seconds, value] in time order. */
  points: Array<[number, number]>;
}

export interface PrometheusClientOptions {
  timeoutMs?: number;
  fetch?: typeof fetch;
}

interface ApiAnswer {
  status: 'success' | 'error';
  data?: { resultType: string; result: unknown };
  errorType?: string;
  error?: string;
}

export class PrometheusClient {
  /** Queries issued since construction (instant and range). */
  queries = 0;
  private readonly timeoutMs: number;
  private readonly doFetch: typeof fetch;

  constructor(
    readonly url: string,
    opts: PrometheusClientOptions = {},
  ) {
    if (!url)
      throw new NemuError(ControllerErrorCodes.PROMETHEUS, 'no Prometheus URL configured; set --prometheus-url (NEMUTATOR_PROMETHEUS_URL)', { status: 503 });
    this.url = url.replace(/\/+$/, '');
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.doFetch = opts.fetch ?? fetch;
  }

  /** Instant vector at `time` (unix seconds; default now). */
  async query(expr: string, time?: number): Promise<InstantSample[]> {
    const form: Record<string, string> = { query: expr };
    if (time !== undefined) form.time = String(time);
    const data = await this.call('/api/v1/query', form);
    if (data.resultType === 'scalar') {
      const [, v] = data.result as [number, string];
      return [{ labels: {}, value: Number(v) }];
    }
    if (data.resultType !== 'vector')
      throw new NemuError(ControllerErrorCodes.PROMETHEUS, `Prometheus answered a ${data.resultType} to an instant query that should give a vector: ${expr}`, {
        status: 502,
      });
    return (data.result as Array<{ metric: Record<string, string>; value: [number, string] }>).map((s) => ({ labels: s.metric, value: Number(s.value[1]) }));
  }

  /** Range query: every series with its points from `start` to `end` (unix seconds) at `stepSeconds`. */
  async queryRange(expr: string, start: number, end: number, stepSeconds: number): Promise<RangeSeries[]> {
    const data = await this.call('/api/v1/query_range', { query: expr, start: String(start), end: String(end), step: String(stepSeconds) });
    return (data.result as Array<{ metric: Record<string, string>; values: Array<[number, string]> }>).map((s) => ({
      labels: s.metric,
      points: s.values.map(([t, v]) => [t, Number(v)] as [number, number]),
    }));
  }

  private async call(path: string, form: Record<string, string>): Promise<{ resultType: string; result: unknown }> {
    this.queries++;
    let res: Response;
    try {
      res = await this.doFetch(this.url + path, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams(form).toString(),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (e) {
      const err = e as Error & { cause?: { code?: string; message?: string; errors?: Array<{ code?: string }> } };
      const cause = err.cause?.code ?? err.cause?.errors?.find((x) => x.code)?.code ?? err.cause?.message ?? err.message;
      const why = err.name === 'TimeoutError' ? `no answer within ${this.timeoutMs} ms (raise --prometheus-timeout or narrow --telemetry-window)` : cause;
      throw new NemuError(ControllerErrorCodes.PROMETHEUS, `Prometheus at ${this.url} is unreachable: ${why}; check --prometheus-url`, {
        status: 503,
        cause: e,
      });
    }
    let body: ApiAnswer | undefined;
    const text = await res.text();
    try {
      body = JSON.parse(text) as ApiAnswer;
    } catch {
      body = undefined;
    }
    if (!body || body.status !== 'success' || !body.data) {
      const detail = body?.error ? `${body.errorType ?? 'error'}: ${body.error}` : `HTTP ${res.status} ${text.slice(0, 200)}`;
      throw new NemuError(ControllerErrorCodes.PROMETHEUS, `Prometheus at ${this.url} refused the query (${detail}); query was: ${form.query!.slice(0, 300)}`, {
        status: 502,
      });
    }
    return body.data;
  }
}
