/**
 * `nemutator whatif`: per workload, current and recommended requests for peak and off-peak,
 * what would be saved and how often usage would have passed the new request. From the
 * controller (GET /api/v1/whatif), or standalone with `--prometheus URL`: then it computes
 * locally, with current requests from the cluster (`--kubeconfig`) or from
 * kube_pod_container_resource_requests in Prometheus.
 */
import { loadConfig, parseDuration } from '#common/config.js';
import { ErrorCodes, NemuError } from '#common/errors.js';
import { loadKubeConfig } from '#common/kube.js';
import { silentLogger } from '#common/log.js';

import { controllerSchema } from '../../config.ts';
import { ClusterModel } from '../../model/model.ts';
import { formatCpu } from '../../mutators/quantity.ts';
import { currentFromModel } from '../../telemetry/feature.ts';
import { PrometheusClient } from '../../telemetry/prometheus.ts';
import { telemetrySettings } from '../../telemetry/service.ts';
import { collectSnapshot } from '../../telemetry/statistics.ts';
import { computeWhatIf, currentFromPrometheus, type WhatIf } from '../../telemetry/whatif.ts';
import { type Command, table } from '../command.ts';

const USAGE = 'nemutator whatif [--prometheus URL [--kubeconfig FILE] [--window 7d] [--step 1m] [--at UNIX_SECONDS]] [--json]';

function flags(args: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < args.length; i++) {
    const m = /^--(prometheus|kubeconfig|window|step|at|json)(?:=(.*))?$/.exec(args[i]!);
    if (!m) throw new NemuError(ErrorCodes.BAD_REQUEST, `unknown argument ${args[i]}; usage: ${USAGE}`);
    out[m[1]!] = m[1] === 'json' ? 'true' : (m[2] ?? args[++i] ?? '');
  }
  return out;
}

/** Computes the what-if without a controller. */
export async function whatIfStandalone(opts: { prometheus: string; kubeconfig?: string; window?: string; step?: string; at?: number }): Promise<WhatIf> {
  const defaults: Record<string, unknown> = {};
  for (const [key, text] of [
    ['telemetryWindow', opts.window],
    ['telemetryStep', opts.step],
  ] as const) {
    if (!text) continue;
    const ms = parseDuration(text);
    if (ms === undefined)
      throw new NemuError(ErrorCodes.BAD_REQUEST, `--${key === 'telemetryWindow' ? 'window' : 'step'} ${text}: expected a duration such as 7d or 1m`);
    defaults[key] = ms;
  }
  const { config } = loadConfig(controllerSchema, {
    program: 'nemutator whatif',
    argv: [],
    env: {},
    defaults: { ...defaults, prometheusUrl: opts.prometheus },
  });
  const settings = telemetrySettings(config);
  const prom = new PrometheusClient(opts.prometheus, { timeoutMs: settings.timeoutMs });
  const kc = opts.kubeconfig ? loadKubeConfig(opts.kubeconfig) : undefined;
  const model = kc ? new ClusterModel(kc, silentLogger) : undefined;
  try {
    await model?.start();
    const at = opts.at ?? Math.floor(Date.now() / 1000);
    const snapshot = await collectSnapshot(prom, {
      window: settings.window,
      at,
      brainsets: settings.brainsets,
      peakThreshold: settings.peakThreshold,
      ...(model ? { owners: model.ownerLookup } : {}),
    });
    const current = model ? currentFromModel(model) : await currentFromPrometheus(prom, at, snapshot.owners ?? (() => undefined));
    return computeWhatIf(snapshot, settings, current);
  } finally {
    await model?.stop();
  }
}

const mem = (b: number | undefined | null) => (b === undefined || b === null ? '-' : `${(b / 2 ** 20).toFixed(0)}Mi`);
const cpu = (c: number | undefined | null) => (c === undefined || c === null ? '-' : c < 0 ? `-${formatCpu(-c)}` : formatCpu(c));
const pct = (f: number) => `${(f * 100).toFixed(1)}%`;

export function renderWhatIf(w: WhatIf): string {
  const rows = w.rows.map((r) => [
    `${r.workload.namespace}/${r.workload.kind}/${r.workload.name}`,
    r.container,
    r.pods,
    `${cpu(r.current.cpu)}/${mem(r.current.memory)}`,
    `${cpu(r.peak.cpu)}/${mem(r.peak.memory)}`,
    `${cpu(r.offPeak.cpu)}/${mem(r.offPeak.memory)}`,
    `${cpu(r.saved.cpu)}/${mem(r.saved.memory)}`,
    `${pct(r.risk.peak)}/${pct(r.risk.offPeak)}`,
    r.confidence.toFixed(2),
  ]);
  const t = w.totals;
  return [
    table(['WORKLOAD', 'CONTAINER', 'PODS', 'CURRENT CPU/MEM', 'PEAK', 'OFF-PEAK', 'SAVED', 'RISK PEAK/OFF', 'CONFIDENCE'], rows),
    '',
    `window ${w.window} ending ${w.at}; ${w.peakHoursPerWeek} peak hours a week. Total requests: ${t.currentCpu.toFixed(2)} → ${t.recommendedCpu.toFixed(2)} cores, ${mem(t.currentMemory)} → ${mem(t.recommendedMemory)} (saved ${t.savedCpu.toFixed(2)} cores, ${mem(t.savedMemory)}).`,
    'Risk: share of the window with CPU usage above the new request (from the usage quantiles).',
  ].join('\n');
}

export const whatifCommand: Command = {
  name: 'whatif',
  summary: 'What right-sizing would change: current vs recommended requests, savings and risk.',
  usage: USAGE,
  async run(ctx) {
    const f = flags(ctx.args);
    const w = f.prometheus
      ? await whatIfStandalone({
          prometheus: f.prometheus,
          ...(f.kubeconfig ? { kubeconfig: f.kubeconfig } : {}),
          ...(f.window ? { window: f.window } : {}),
          ...(f.step ? { step: f.step } : {}),
          ...(f.at ? { at: Number(f.at) } : {}),
        })
      : await ctx.client.json<WhatIf>('GET', '/api/v1/whatif');
    ctx.out(f.json || ctx.config.output === 'json' ? JSON.stringify(w, null, 2) : renderWhatIf(w));
  },
};
