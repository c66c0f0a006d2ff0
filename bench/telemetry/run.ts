// bench/telemetry: 500 nodes and 10,000 pods with a day of backfilled history. Measures the
// time to build the cluster model (informers on the API server double) and all statistics
// (real Prometheus), and the queries issued; then compares recommendation quality on the
// generated traces: Nemutator's peak/off-peak brainsets against a VPA-style (P90 × 1.15) and
// a krr-style (CPU p95, memory max × 1.15) formula and the declared requests.
// `npx tsx bench/telemetry/run.ts` (BENCH_TELEMETRY_WORKLOADS, BENCH_TELEMETRY_PODS).
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';

import { loadConfig } from '#common/config.js';
import { silentLogger } from '#common/log.js';
import { controllerSchema } from '#controller/config.js';
import { ClusterModel } from '#controller/model/model.js';
import { recommend } from '#controller/telemetry/engine.js';
import { PrometheusClient } from '#controller/telemetry/prometheus.js';
import { hourOfWeek } from '#controller/telemetry/seasons.js';
import { telemetrySettings } from '#controller/telemetry/service.js';
import { collectSnapshot, workloadKey } from '#controller/telemetry/statistics.js';
import { startKubeDouble } from '#test/harness/kube/index.js';
import { startPrometheus } from '#test/harness/prometheus.js';
import { requireTool, runTool } from '#test/harness/tools.js';
import { quantile } from '#test/telemetry/fixture.js';

import { writeSection } from '../lib/results.ts';
import { generate, type Traces, writeOpenMetrics } from './traces.ts';

const WORKLOADS = Number(process.env.BENCH_TELEMETRY_WORKLOADS ?? 1000);
const PODS = Number(process.env.BENCH_TELEMETRY_PODS ?? 10);
const NODES = 500;
const STEP = 300;
const WINDOW = 86400;
const RATE = 900;

function lastWednesdayNight(): number {
  let t = Math.floor((Date.now() - 4 * 3_600_000) / 3_600_000) * 3_600_000;
  while (!(new Date(t).getUTCDay() === 3 && new Date(t).getUTCHours() === 23)) t -= 3_600_000;
  return t / 1000;
}
const log = (s: string) => console.log(`[bench/telemetry] ${s}`);
const ms = (t0: number) => Date.now() - t0;

async function main(): Promise<void> {
  const end = lastWednesdayNight();
  let t0 = Date.now();
  const tr = generate({ workloads: WORKLOADS, podsPerWorkload: PODS, start: end - WINDOW - 2 * RATE, end, step: STEP });
  log(`generated ${tr.cpu.length} pods × ${tr.cpu[0]!.length} samples in ${ms(t0)} ms`);

  const home = await mkdtemp(join(tmpdir(), 'nemu-bench-telemetry-'));
  const prom = await startPrometheus();
  const kube = await startKubeDouble({ controllers: false, kubelet: false, nodes: Array.from({ length: NODES }, (_, i) => `node-${i}`) });
  try {
    t0 = Date.now();
    const samples = await writeOpenMetrics(tr, join(home, 'history.om'), RATE);
    const writeMs = ms(t0);
    t0 = Date.now();
    await runTool(requireTool('promtool', 'prometheus'), [
      'tsdb',
      'create-blocks-from',
      'openmetrics',
      '--quiet',
      '--max-block-duration=744h',
      join(home, 'history.om'),
      prom.dataDir,
    ]);
    const promtoolMs = ms(t0);
    await rm(join(home, 'history.om'));
    await prom.restart();
    log(`backfilled ${samples} samples: write ${writeMs} ms, promtool ${promtoolMs} ms`);

    // The cluster: Deployments → ReplicaSets → Pods spread over the nodes, Running.
    t0 = Date.now();
    let k = 0;
    for (const w of tr.workloads) {
      const dUid = `d-${w.name}`;
      const rsName = `${w.name}-${w.rs}`;
      const cpuReq = `${Math.round(w.cpuBase * 2000)}m`;
      const memReq = `${Math.round((w.memBase * 1.5) / 2 ** 20)}Mi`;
      kube.put({
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: w.name, namespace: w.namespace, uid: dUid },
        spec: {
          replicas: w.pods.length,
          selector: { matchLabels: { app: w.name } },
          template: { metadata: { labels: { app: w.name } }, spec: { containers: [{ name: 'app', image: 'example/app:1' }] } },
        },
      });
      kube.put({
        apiVersion: 'apps/v1',
        kind: 'ReplicaSet',
        metadata: {
          name: rsName,
          namespace: w.namespace,
          uid: `rs-${w.name}`,
          ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: w.name, uid: dUid, controller: true }],
        },
        spec: { replicas: w.pods.length, selector: { matchLabels: { app: w.name } } },
      });
      for (const pod of w.pods) {
        kube.put({
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: {
            name: pod,
            namespace: w.namespace,
            labels: { app: w.name },
            ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: rsName, uid: `rs-${w.name}`, controller: true }],
          },
          spec: {
            nodeName: `node-${k++ % NODES}`,
            containers: [{ name: 'app', image: 'example/app:1', resources: { requests: { cpu: cpuReq, memory: memReq } } }],
          },
          status: { phase: 'Running' },
        });
      }
    }
    log(`cluster stored in the API server double in ${ms(t0)} ms`);

    // Measured: model from informers, then every statistic from Prometheus.
    const { config } = loadConfig(controllerSchema, {
      program: 'bench',
      argv: [],
      env: {},
      defaults: { telemetryWindow: WINDOW * 1000, telemetryStep: STEP * 1000, telemetryRateWindow: RATE * 1000, confidenceHistory: WINDOW * 1000 },
    });
    const settings = telemetrySettings(config);
    const kc = new KubeConfig();
    kc.loadFromFile(kube.kubeconfigPath);
    const model = new ClusterModel(kc, silentLogger);
    const prom1 = new PrometheusClient(prom.url, { timeoutMs: 120_000 });
    // The model's informers list while the queries run; owners are needed only at the end.
    const tAll = Date.now();
    let modelMs = 0;
    const modelReady = model.start().then(() => {
      modelMs = ms(tAll);
      return model.ownerLookup;
    });
    const snapshot = await collectSnapshot(prom1, {
      window: { ...settings.window, recorded: true },
      at: end,
      brainsets: settings.brainsets,
      peakThreshold: settings.peakThreshold,
      owners: modelReady,
    });
    const statsMs = ms(tAll);
    const totalMs = ms(tAll);
    // The same without recording rules (rate() in subqueries), for comparison.
    const prom2 = new PrometheusClient(prom.url, { timeoutMs: 300_000 });
    t0 = Date.now();
    const raw = await collectSnapshot(prom2, {
      window: settings.window,
      at: end,
      brainsets: settings.brainsets,
      peakThreshold: settings.peakThreshold,
      owners: model.ownerLookup,
    });
    const rawMs = ms(t0);
    log(`raw statistics (no recording rules) ${rawMs} ms, ${prom2.queries} queries, ${raw.workloads.length} workloads`);
    const view = model.view(snapshot);
    await model.stop();
    log(
      `model ${modelMs} ms (${view.pods.length} pods, ${view.nodes.length} nodes, ${view.workloads.length} workloads), statistics ${statsMs} ms, ${prom1.queries} queries, ${snapshot.workloads.length} workload stats`,
    );

    const quality = compare(tr, snapshot, settings);
    const machine = `nproc ${cpus().length}, Node ${process.version}, ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC`;
    const body = [
      `${NODES} nodes, ${tr.cpu.length} pods (${WORKLOADS} Deployments × ${PODS}, one container each) in the Kubernetes API server double; one day of history at a ${STEP / 60}-minute step (${(samples / 1e6).toFixed(1)} M samples of container_cpu_usage_seconds_total, container_memory_working_set_bytes and the recorded series, ending on a Wednesday so the window holds a 09:00–17:00 peak) backfilled into Prometheus 2.42 with promtool together with the series manifests/prometheus-rules.yaml records, as if the rules had been running (${(promtoolMs / 1000).toFixed(1)} s; 1-minute steps over 7 days would be 200 M samples, well past a minute or two). Statistics with window 1d, step 5m, rate() over 15m. \`npx tsx bench/telemetry/run.ts\`.`,
      '',
      `Machine: ${machine}.`,
      '',
      '| measured | value | target |',
      '|---|---:|---:|',
      `| cluster model (6 informers, initial list; runs while the queries run) | ${(modelMs / 1000).toFixed(2)} s | |`,
      `| all statistics with the recording rules (${snapshot.containers.length} containers, ${snapshot.workloads.length} workloads, seasons) | ${(statsMs / 1000).toFixed(2)} s | |`,
      `| model + statistics, wall clock (recording rules) | ${(totalMs / 1000).toFixed(2)} s | ≤ 10 s: ${totalMs <= 10_000 ? 'met' : '**missed**'} |`,
      `| Prometheus queries issued | ${prom1.queries} | ≤ 20: ${prom1.queries <= 20 ? 'met' : '**missed**'} |`,
      `| all statistics without recording rules (rate() in subqueries, the default) | ${(rawMs / 1000).toFixed(2)} s (${prom2.queries} queries) | ${modelMs + rawMs <= 10_000 ? 'met' : '**missed** with the model'} |`,
      '',
      `Recommendation quality on the same generated traces (in-sample: the day the recommendations were computed from; 5-minute usage intervals; ${snapshot.schedule.peakHours.filter((h) => snapshot.schedule.profile[h] !== null).length} of the ${snapshot.schedule.profile.filter((v) => v !== null).length} hours with data detected as peak; generated: 09:00–17:00). Requested CPU-hours is what the requests reserve over the day; minutes above request count, per pod, the 5-minute intervals whose CPU (memory) usage exceeded the request.`,
      '',
      '| method | requested CPU-hours | vs declared | CPU minutes above request | memory GiB-hours requested | memory minutes above request |',
      '|---|---:|---:|---:|---:|---:|',
      ...quality.map(
        (q) =>
          `| ${q.name} | ${q.cpuHours.toFixed(0)} | ${(q.cpuHours / quality[0]!.cpuHours).toFixed(2)} | ${q.cpuMinutesAbove.toFixed(0)} | ${q.memGiBHours.toFixed(0)} | ${q.memMinutesAbove.toFixed(0)} |`,
      ),
      '',
      `Nemutator: peak hours request p95 of peak usage × 1.15, off-peak hours p90 of off-peak usage × 1.10, memory max × 1.15 (the defaults), per Deployment pooled as documented (max of the pods' quantiles). VPA-style: CPU and memory p90 × 1.15 over the whole day, pooled over the Deployment's pods. krr-style: CPU p95 and memory max × 1.15. Declared: the requests in the pod specs (2 × the base CPU, 1.5 × the base memory).`,
    ].join('\n');
    writeSection('telemetry', body);
    log('bench/RESULTS.md updated');
  } finally {
    await kube.stop();
    await prom.stop();
    await rm(home, { recursive: true, force: true });
  }
}

interface Quality {
  name: string;
  cpuHours: number;
  cpuMinutesAbove: number;
  memGiBHours: number;
  memMinutesAbove: number;
}

function compare(tr: Traces, snapshot: Awaited<ReturnType<typeof collectSnapshot>>, settings: ReturnType<typeof telemetrySettings>): Quality[] {
  const first = snapshot.at - snapshot.window.windowSeconds;
  const idx: number[] = [];
  for (let i = 0; i < tr.cpu[0]!.length; i++) if (tr.start + i * tr.step > first) idx.push(i);
  const stats = new Map(snapshot.workloads.map((w) => [workloadKey(w.workload, w.container), w]));
  type Requests = (t: number) => { cpu: number; memory: number };
  const methods: Array<{ name: string; per: (w: Traces['workloads'][number], pooledCpu: number[], pooledMem: number[]) => Requests }> = [
    { name: 'declared requests', per: (w) => () => ({ cpu: Math.round(w.cpuBase * 2000) / 1000, memory: Math.round((w.memBase * 1.5) / 2 ** 20) * 2 ** 20 }) },
    {
      name: 'VPA-style (P90 × 1.15)',
      per: (_, c, m) => {
        const r = { cpu: quantile(0.9, c) * 1.15, memory: quantile(0.9, m) * 1.15 };
        return () => r;
      },
    },
    {
      name: 'krr-style (CPU p95, memory max × 1.15)',
      per: (_, c, m) => {
        const r = { cpu: quantile(0.95, c), memory: Math.max(...m) * 1.15 };
        return () => r;
      },
    },
    {
      name: 'Nemutator peak/off-peak brainsets',
      per: (w) => {
        const s = stats.get(workloadKey({ namespace: w.namespace, kind: 'Deployment', name: w.name }, 'app'));
        if (!s) throw new Error(`no statistics for ${w.namespace}/${w.name}`);
        const peak = recommend(s, settings.brainsets.peak, settings.engine).requests;
        const off = recommend(s, settings.brainsets['off-peak'], settings.engine).requests;
        return (t) => (snapshot.schedule.hours[hourOfWeek(t * 1000)] === 'peak' ? peak : off);
      },
    },
  ];
  return methods.map(({ name, per }) => {
    const q: Quality = { name, cpuHours: 0, cpuMinutesAbove: 0, memGiBHours: 0, memMinutesAbove: 0 };
    for (const w of tr.workloads) {
      const ks = w.pods.map((p) => tr.podIndex.get(`${w.namespace}/${p}`)!);
      const pooledCpu = ks.flatMap((k) => idx.map((i) => tr.cpu[k]![i]!));
      const pooledMem = ks.flatMap((k) => idx.map((i) => tr.memory[k]![i]!));
      const req = per(w, pooledCpu, pooledMem);
      for (const k of ks) {
        for (const i of idx) {
          const t = tr.start + i * tr.step;
          const r = req(t - tr.step); // the interval that ends at t started one step earlier
          q.cpuHours += (r.cpu * tr.step) / 3600;
          q.memGiBHours += (r.memory / 2 ** 30) * (tr.step / 3600);
          if (tr.cpu[k]![i]! > r.cpu) q.cpuMinutesAbove += tr.step / 60;
          if (tr.memory[k]![i]! > r.memory) q.memMinutesAbove += tr.step / 60;
        }
      }
    }
    return q;
  });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
