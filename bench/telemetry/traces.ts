// Generated usage traces for the telemetry bench: 10,000 pods in 1,000 Deployments on 500
// nodes, CPU and memory every `step` seconds, written straight to an OpenMetrics file (too
// large for one string) for `promtool tsdb create-blocks-from openmetrics`.
import { createWriteStream } from 'node:fs';

import { isPeak, noise } from '#test/telemetry/fixture.js';

export type Shape = 'steady' | 'diurnal' | 'spiky';

export interface Workload {
  namespace: string;
  name: string;
  rs: string;
  shape: Shape;
  cpuBase: number;
  memBase: number;
  pods: string[];
}

export interface Traces {
  start: number;
  end: number;
  step: number;
  workloads: Workload[];
  /** Per pod (in workload order): CPU cores used in the interval ending at each sample, and memory bytes. */
  cpu: Float64Array[];
  memory: Float64Array[];
  podIndex: Map<string, number>;
}

const ALPHA = 'bcdfghjklmnpqrstvwxz2456789';
const word = (seed: number, n: number) => Array.from({ length: n }, (_, i) => ALPHA[Math.floor(noise(seed, i) * ALPHA.length)]).join('');

export function generate(opts: { workloads: number; podsPerWorkload: number; start: number; end: number; step: number }): Traces {
  const n = Math.floor((opts.end - opts.start) / opts.step) + 1;
  const shapes: Shape[] = ['steady', 'diurnal', 'diurnal', 'spiky'];
  const workloads: Workload[] = [];
  const cpu: Float64Array[] = [];
  const memory: Float64Array[] = [];
  const podIndex = new Map<string, number>();
  for (let w = 0; w < opts.workloads; w++) {
    const shape = shapes[w % shapes.length]!;
    const wl: Workload = {
      namespace: `team-${w % 20}`,
      name: `svc-${w}`,
      rs: word(w + 7, 9),
      shape,
      cpuBase: 0.05 + noise(w, 1) * 0.5,
      memBase: (64 + noise(w, 2) * 960) * 2 ** 20,
      pods: [],
    };
    for (let p = 0; p < opts.podsPerWorkload; p++) {
      const pod = `${wl.name}-${wl.rs}-${word(w * 100 + p + 13, 5)}`;
      wl.pods.push(pod);
      const k = cpu.length;
      podIndex.set(`${wl.namespace}/${pod}`, k);
      const c = new Float64Array(n);
      const m = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        const t = opts.start + i * opts.step;
        const r = noise(k + 1, i);
        const peak = isPeak(t);
        let u = wl.cpuBase;
        if (shape === 'steady') u *= 0.9 + 0.2 * r;
        else if (shape === 'diurnal') u *= (peak ? 3 : 1) * (0.8 + 0.4 * r);
        else u *= r > 0.97 ? 4 + 4 * noise(k + 7, i) : 0.7 + 0.3 * r;
        c[i] = u;
        m[i] = wl.memBase * (shape === 'diurnal' && peak ? 1.3 : 1) * (0.95 + 0.1 * noise(k + 99, i));
      }
      cpu.push(c);
      memory.push(m);
    }
    workloads.push(wl);
  }
  return { start: opts.start, end: opts.end, step: opts.step, workloads, cpu, memory, podIndex };
}

/** Writes the cAdvisor series (and, with `recordedRate`, the recording rules' series); resolves with the number of samples. */
export async function writeOpenMetrics(tr: Traces, file: string, recordedRate?: number): Promise<number> {
  const out = createWriteStream(file);
  let buf = '';
  let samples = 0;
  const flush = async () => {
    if (!out.write(buf)) await new Promise<void>((r) => out.once('drain', () => r()));
    buf = '';
  };
  const n = tr.cpu[0]!.length;
  const podsOf = function* () {
    for (const w of tr.workloads) for (const pod of w.pods) yield { w, pod, k: tr.podIndex.get(`${w.namespace}/${pod}`)! };
  };
  buf += '# TYPE container_cpu_usage_seconds counter\n';
  for (const { w, pod, k } of podsOf()) {
    const prefix = `container_cpu_usage_seconds_total{container="app",namespace="${w.namespace}",pod="${pod}"} `;
    let acc = 0;
    for (let i = 0; i < n; i++) {
      if (i > 0) acc += tr.cpu[k]![i]! * tr.step;
      buf += `${prefix}${acc} ${tr.start + i * tr.step}\n`;
    }
    samples += n;
    if (buf.length > 1 << 20) await flush();
  }
  buf += '# TYPE container_memory_working_set_bytes gauge\n';
  for (const { w, pod, k } of podsOf()) {
    const prefix = `container_memory_working_set_bytes{container="app",namespace="${w.namespace}",pod="${pod}"} `;
    for (let i = 0; i < n; i++) buf += `${prefix}${Math.round(tr.memory[k]![i]!)} ${tr.start + i * tr.step}\n`;
    samples += n;
    if (buf.length > 1 << 20) await flush();
  }
  if (recordedRate !== undefined) {
    // What manifests/prometheus-rules.yaml would have recorded, as if it had run all along.
    const lag = recordedRate / tr.step;
    const cluster = new Float64Array(n);
    const rate = (k: number, i: number) => {
      let s = 0;
      for (let j = i - lag + 1; j <= i; j++) s += tr.cpu[k]![j]!;
      return s / lag;
    };
    buf += '# TYPE namespace_pod_container:nemutator_cpu_usage:rate5m gauge\n';
    for (const { w, pod, k } of podsOf()) {
      const prefix = `namespace_pod_container:nemutator_cpu_usage:rate5m{container="app",namespace="${w.namespace}",pod="${pod}"} `;
      for (let i = lag; i < n; i++) {
        const v = rate(k, i);
        cluster[i]! += v;
        buf += `${prefix}${v} ${tr.start + i * tr.step}\n`;
      }
      samples += n - lag;
      if (buf.length > 1 << 20) await flush();
    }
    buf += '# TYPE namespace_pod_container:nemutator_memory_working_set_bytes:max gauge\n';
    for (const { w, pod, k } of podsOf()) {
      const prefix = `namespace_pod_container:nemutator_memory_working_set_bytes:max{container="app",namespace="${w.namespace}",pod="${pod}"} `;
      for (let i = lag; i < n; i++) buf += `${prefix}${Math.round(tr.memory[k]![i]!)} ${tr.start + i * tr.step}\n`;
      samples += n - lag;
      if (buf.length > 1 << 20) await flush();
    }
    buf += '# TYPE nemutator:cluster_cpu_usage:rate5m gauge\n';
    for (let i = lag; i < n; i++) buf += `nemutator:cluster_cpu_usage:rate5m ${cluster[i]} ${tr.start + i * tr.step}\n`;
  }
  buf += '# EOF\n';
  await flush();
  await new Promise<void>((r, j) => out.end((e?: Error | null) => (e ? j(e) : r())));
  return samples;
}
