// Statistics, seasons and recommendations against a real Prometheus holding seven days of
// generated diurnal history (backfilled with promtool): every value equals what this test
// computes on its own from the same generated samples.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';

import { runCli } from '#controller/cli/main.js';
import { type EngineParams, recommend } from '#controller/telemetry/engine.js';
import { PrometheusClient } from '#controller/telemetry/prometheus.js';
import { RECORDED } from '#controller/telemetry/queries.js';
import { brainsets } from '#controller/telemetry/seasons.js';
import { collectSnapshot, type Snapshot } from '#controller/telemetry/statistics.js';

import { openMetrics } from '../harness/openmetrics.ts';
import { type PrometheusServer, startPrometheus } from '../harness/prometheus.ts';
import { requireTool, runTool } from '../harness/tools.ts';
import { expected, GENERATED_PEAK_HOURS, generateHistory, type History, quantile, recordedSeriesOf, seriesOf, standardPods } from './fixture.ts';

const WINDOW = 7 * 86400;
const STEP = 60;
const RATE = 300;
const BRAINSETS = brainsets({ peakCpuPercentile: 0.95, peakCpuMargin: 0.15, offPeakCpuPercentile: 0.9, offPeakCpuMargin: 0.1, memoryMargin: 0.15 });
const PARAMS: EngineParams = { minCpu: 0.01, minMemory: 32 * 2 ** 20, oomMargin: 0.2, limitsPolicy: 'keep-ratio', confidenceSeconds: 7 * 86400 };

let prom: PrometheusServer;
let history: History;
let snapshot: Snapshot;
let at: number;

function close(actual: number, want: number, what: string): void {
  expect(Math.abs(actual - want), `${what}: ${actual} vs ${want}`).toBeLessThanOrEqual(1e-9 * Math.max(1, Math.abs(want)));
}

beforeAll(async () => {
  // Ends 4 h before now on an hour boundary (older than Prometheus' head block).
  at = Math.floor(Date.now() / 3_600_000) * 3600 - 4 * 3600;
  history = generateHistory(standardPods(), at - WINDOW - 2 * 3600, at, STEP);
  prom = await startPrometheus({ backfill: openMetrics([...seriesOf(history, at - 3600), ...recordedSeriesOf(history, RATE)]) });
  const client = new PrometheusClient(prom.url);
  snapshot = await collectSnapshot(client, {
    window: { windowSeconds: WINDOW, stepSeconds: STEP, rateSeconds: RATE },
    at,
    brainsets: BRAINSETS,
    peakThreshold: 0.5,
  });
}, 120_000);

afterAll(async () => {
  await prom?.stop();
});

describe('telemetry statistics from a backfilled Prometheus', () => {
  it('reports CPU min/avg/max/p50/p90/p95/p99 and memory min/avg/max per container exactly as computed from the generated series', () => {
    expect(snapshot.containers).toHaveLength(history.pods.length);
    history.pods.forEach((p, k) => {
      const got = snapshot.containers.find((c) => c.pod === p.pod && c.container === p.container)!;
      expect(got, p.pod).toBeDefined();
      const want = expected(history, k, at, WINDOW, STEP, RATE);
      for (const s of ['min', 'avg', 'max', 'p50', 'p90', 'p95', 'p99'] as const) close(got.cpu[s], want.cpu[s], `${p.pod} cpu ${s}`);
      for (const s of ['min', 'avg', 'max'] as const) close(got.memory[s], want.memory[s], `${p.pod} memory ${s}`);
      close(got.seasonCpu.peak!, want.season(0.95, true), `${p.pod} peak p95`);
      close(got.seasonCpu['off-peak']!, want.season(0.9, false), `${p.pod} off-peak p90`);
      expect(got.oomKilled).toBe(!!p.oom);
      if (p.throttled) close(got.throttling!, 0.1, `${p.pod} throttling`);
      else expect(got.throttling).toBeNull();
      expect(got.historySeconds).toBe(want.rates.length * STEP);
    });
  });

  it('detects the generated peak hours (weekdays 09:00–17:00 UTC) from the hour-of-week profile', () => {
    expect(snapshot.schedule.peakHours).toEqual(GENERATED_PEAK_HOURS);
    expect(snapshot.schedule.offPeakHours).toHaveLength(168 - GENERATED_PEAK_HOURS.length);
  });

  it('pools pods into workloads through the owner chain (kube_pod_owner, kube_replicaset_owner, pod names)', () => {
    const names = snapshot.workloads.map((w) => `${w.workload.namespace}/${w.workload.kind}/${w.workload.name}/${w.container}×${w.pods}`);
    expect(names).toEqual([
      'batch/Deployment/worker/app×6',
      'monitoring/DaemonSet/node-agent/agent×4',
      'shop/Deployment/api/app×6',
      'shop/Deployment/web/app×6',
      'shop/StatefulSet/db/postgres×2',
    ]);
    const web = snapshot.workloads.find((w) => w.workload.name === 'web')!;
    const ks = history.pods.flatMap((p, k) => (p.workload.name === 'web' ? [k] : []));
    const per = ks.map((k) => expected(history, k, at, WINDOW, STEP, RATE));
    close(web.cpu.p95, Math.max(...per.map((e) => e.cpu.p95)), 'web p95 = max of pods');
    close(web.cpu.min, Math.min(...per.map((e) => e.cpu.min)), 'web min');
    close(web.cpu.avg, per.reduce((s, e) => s + e.cpu.avg, 0) / per.length, 'web avg = mean of pods');
    close(web.memory.max, Math.max(...per.map((e) => e.memory.max)), 'web memory max');
    expect(web.throttling).toBeCloseTo(0.1, 9);
  });

  it('recommends per season with the brainset formulas, the OOM floor and keep-ratio limits', () => {
    const api = snapshot.workloads.find((w) => w.workload.name === 'api')!;
    const ks = history.pods.flatMap((p, k) => (p.workload.name === 'api' ? [k] : []));
    const per = ks.map((k) => expected(history, k, at, WINDOW, STEP, RATE));
    const peakP95 = Math.max(...per.map((e) => e.season(0.95, true)));
    const offP90 = Math.max(...per.map((e) => e.season(0.9, false)));
    const memMax = Math.max(...per.map((e) => e.memory.max));
    const current = { requests: { cpu: 1, memory: 256 * 2 ** 20 }, limits: { cpu: 2, memory: 512 * 2 ** 20 } };
    const peak = recommend(api, BRAINSETS.peak, PARAMS, current);
    const off = recommend(api, BRAINSETS['off-peak'], PARAMS, current);
    close(peak.requests.cpu, peakP95 * 1.15, 'peak cpu');
    close(off.requests.cpu, offP90 * 1.1, 'off-peak cpu');
    expect(off.requests.cpu).toBeLessThan(peak.requests.cpu / 3);
    // api was OOM-killed: memory request ≥ max(max working set, limit) × 1.2.
    close(peak.requests.memory, Math.max(memMax * 1.15, 512 * 2 ** 20 * 1.2), 'memory with OOM floor');
    expect(peak.basis.memory).toMatch(/OOM/);
    close(peak.limits.cpu!, peak.requests.cpu * 2, 'keep-ratio cpu limit');
    expect(peak.confidence).toBe(1);

    const worker = snapshot.workloads.find((w) => w.workload.name === 'worker')!;
    const wm = Math.max(...history.pods.flatMap((p, k) => (p.workload.name === 'worker' ? [expected(history, k, at, WINDOW, STEP, RATE).memory.max] : [])));
    close(recommend(worker, BRAINSETS.peak, PARAMS).requests.memory, wm * 1.15, 'memory = max × 1.15');
    const none = recommend(worker, BRAINSETS.peak, { ...PARAMS, limitsPolicy: 'none' }, current);
    expect(none.limits).toEqual({});
    const tiny = recommend({ ...worker, cpu: { ...worker.cpu, p95: 0 }, seasonCpu: { peak: 0.0001 }, historySeconds: 86400 }, BRAINSETS.peak, PARAMS);
    expect(tiny.requests.cpu).toBe(0.01);
    expect(tiny.confidence).toBeCloseTo(1 / 7, 9);
    expect(quantile(0.5, [1, 2, 3, 4])).toBe(2.5);
  });

  it('issues a fixed number of batched queries, not one per pod', () => {
    expect(snapshot.queries).toBeLessThanOrEqual(20);
  });

  it('`nemutator whatif --prometheus URL --json` runs standalone: current requests from kube_pod_container_resource_requests, peak and off-peak recommendations, savings and risk', async () => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await runCli(['whatif', '--prometheus', prom.url, '--window', '7d', '--at', String(at), '--json'], {
      out: (t) => out.push(t),
      err: (t) => err.push(t),
    });
    expect(err).toEqual([]);
    expect(code).toBe(0);
    const w = JSON.parse(out.join('\n'));
    const web = w.rows.find((r: { workload: { name: string } }) => r.workload.name === 'web');
    const stats = snapshot.workloads.find((x) => x.workload.name === 'web')!;
    const peak = recommend(stats, BRAINSETS.peak, PARAMS, { requests: { cpu: 1, memory: 512 * 2 ** 20 }, limits: {} });
    const off = recommend(stats, BRAINSETS['off-peak'], PARAMS, { requests: { cpu: 1, memory: 512 * 2 ** 20 }, limits: {} });
    expect(web.current).toEqual({ cpu: 1, memory: 512 * 2 ** 20 });
    close(web.peak.cpu, peak.requests.cpu, 'what-if peak cpu');
    close(web.offPeak.cpu, off.requests.cpu, 'what-if off-peak cpu');
    const f = GENERATED_PEAK_HOURS.length / 168;
    close(web.saved.cpu, (1 - (f * peak.requests.cpu + (1 - f) * off.requests.cpu)) * 6, 'cpu saved over 6 pods');
    expect(web.risk.offPeak).toBeGreaterThan(web.risk.peak);
    expect(web.risk.peak).toBeLessThan(0.05);
    const api = w.rows.find((r: { workload: { name: string } }) => r.workload.name === 'api');
    expect(api.current).toEqual({});
    expect(api.saved).toEqual({ cpu: null, memory: null });

    const table: string[] = [];
    await runCli(['whatif', '--prometheus', prom.url, '--window', '1d', '--at', String(at)], { out: (t) => table.push(t), err: (t) => table.push(t) });
    expect(table.join('\n')).toMatch(/shop\/Deployment\/web\s+app\s+6\s+1\/512Mi/);
  });

  it('with --prometheus-recording-rules the statistics read the recorded series and come out the same', async () => {
    const recorded = await collectSnapshot(new PrometheusClient(prom.url), {
      window: { windowSeconds: WINDOW, stepSeconds: STEP, rateSeconds: RATE, recorded: true },
      at,
      brainsets: BRAINSETS,
      peakThreshold: 0.5,
    });
    expect(recorded.schedule.peakHours).toEqual(GENERATED_PEAK_HOURS);
    expect(recorded.containers.length).toBe(snapshot.containers.length);
    recorded.containers.forEach((c, i) => {
      const raw = snapshot.containers[i]!;
      for (const s of ['min', 'max', 'p50', 'p90', 'p95', 'p99'] as const) close(c.cpu[s], raw.cpu[s], `${c.pod} recorded cpu ${s}`);
      // recorded: the mean of the 5-minute rates; raw: the increase over the window ÷ window
      expect(Math.abs(c.cpu.avg - raw.cpu.avg) / raw.cpu.avg).toBeLessThan(0.01);
      for (const s of ['min', 'avg', 'max'] as const) close(c.memory[s], raw.memory[s], `${c.pod} recorded memory ${s}`);
      close(c.seasonCpu.peak!, raw.seasonCpu.peak!, `${c.pod} recorded peak`);
    });
  });

  it('manifests/prometheus-rules.yaml passes `promtool check rules` and records the series the statistics read', async () => {
    const { stdout } = await runTool(requireTool('promtool', 'prometheus'), ['check', 'rules', 'manifests/prometheus-rules.yaml']);
    expect(stdout).toMatch(/SUCCESS: \d+ rules found/);
    // the recording rules (the alerts are tested in test/manifests/alerts.test.ts)
    const rules = parse(readFileSync('manifests/prometheus-rules.yaml', 'utf8')).groups.flatMap((g: { rules: Array<{ record?: string }> }) =>
      g.rules.flatMap((r) => (r.record ? [r.record] : [])),
    );
    expect(rules.sort()).toEqual(Object.values(RECORDED).sort());
  });
});
