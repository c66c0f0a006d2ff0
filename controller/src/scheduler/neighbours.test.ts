// The bad-neighbour formula alone: ranks, the gate, high slots by node count, buckets, and the
// history's signals from NodeReports (encoded and decoded with the fleet link's protobuf codec).
import { describe, expect, it } from 'vitest';

import { decodeEnvelope, encodeEnvelope, type INodeReport } from '#proto/codec.js';

import { bucketOf, DEFAULT_NEIGHBOUR_SETTINGS, highSlots, NO_SIGNALS, percentileRank, type PodSignals, scoreNeighbours, type Signals } from './neighbours.ts';
import { NeighbourHistory, type PodFacts } from './neighbours-history.ts';

const pod = (name: string, s: Partial<Signals>, workload = name): PodSignals => {
  const signals = { ...NO_SIGNALS, ...s };
  return {
    namespace: 'ns',
    name: `${name}-0`,
    node: 'n1',
    workload: { namespace: 'ns', kind: 'Deployment', name: workload },
    signals: { now: signals, usual: signals, worst: signals },
  };
};

describe('scoreNeighbours', () => {
  it('gives the loudest workload 100 and quiet ones low scores', () => {
    const r = scoreNeighbours([pod('noisy', { cpuOverRequest: 0.5, inflictedThrottling: 0.5 }), pod('a', { cpuOverRequest: 0.01 }), pod('b', {})], 3);
    expect(r.lookup.forWorkload('ns', 'Deployment', 'noisy')).toEqual({ now: 100, usual: 100, worst: 100 });
    expect(r.lookup.forWorkload('ns', 'Deployment', 'b')!.worst).toBe(0);
    expect(bucketOf(r.lookup.forWorkload('ns', 'Deployment', 'a')!.worst)).toBe('low');
    expect(r.workloads.map((w) => w.workload.name)).toEqual(['noisy', 'a', 'b']);
  });

  it('labels nobody bad in a quiet cluster, whatever the ranks (the gate)', () => {
    const quiet = Array.from({ length: 10 }, (_, i) => pod(`w${i}`, { cpuOverRequest: 0.001 * i }));
    const r = scoreNeighbours(quiet, 3);
    for (const w of r.workloads) expect(w.scores.worst, w.workload.name).toBeLessThan(40);
  });

  it('keeps a small cluster from labelling half of it high: one high slot per three nodes', () => {
    const loud = Array.from({ length: 6 }, (_, i) => pod(`w${i}`, { cpuOverRequest: 0.5 + 0.01 * i }));
    const small = scoreNeighbours(loud, 3);
    expect(small.highSlots).toBe(1);
    expect(small.workloads.filter((w) => bucketOf(w.scores.worst) === 'high').map((w) => w.workload.name)).toEqual(['w5']);
    expect(small.workloads.find((w) => w.workload.name === 'w4')!.explain.worst).toMatchObject({ score: 69, capped: true });
    const large = scoreNeighbours(loud, 30);
    expect(large.highSlots).toBe(10);
    expect(large.workloads.filter((w) => bucketOf(w.scores.worst) === 'high').length).toBeGreaterThan(1);
    expect(highSlots(0, DEFAULT_NEIGHBOUR_SETTINGS.highPerNode)).toBe(1);
  });

  it('ranks a pod as if it stood in for its workload; a workload is as bad as its worst pod', () => {
    const r = scoreNeighbours([pod('web', { cpuOverRequest: 0.8 }, 'web'), { ...pod('web', {}, 'web'), name: 'web-1' }, pod('db', { cpuOverRequest: 0.1 })], 3);
    expect(r.lookup.forPod('ns', 'web-0')!.worst).toBe(100);
    expect(r.lookup.forPod('ns', 'web-1')!.worst).toBe(0);
    expect(r.lookup.forWorkload('ns', 'Deployment', 'web')!.worst).toBe(100);
    // usual: the mean of its pods (0.4 raw), still above db
    expect(r.lookup.forWorkload('ns', 'Deployment', 'web')!.usual).toBeGreaterThan(r.lookup.forWorkload('ns', 'Deployment', 'db')!.usual);
  });

  it('computes mid-rank percentiles, leaving the workload itself out', () => {
    expect(percentileRank([0, 1, 2, 3], 3, 3)).toBe(1);
    expect(percentileRank([0, 1, 2, 3], 0, 0)).toBe(0);
    expect(percentileRank([1, 1, 1], 1, 1)).toBe(0.5);
    expect(percentileRank([0, 1, 2, 3], 1.5, 2)).toBeCloseTo(2 / 3);
    expect(percentileRank([5], 5, 5)).toBe(1);
  });
});

describe('NeighbourHistory', () => {
  const facts = (request: number): PodFacts => ({
    workload: { namespace: 'ns', kind: 'Deployment', name: 'x' },
    cpuRequestCores: request,
    restarts: 0,
    oomKilled: false,
  });
  /** A report as the controller receives it: through the fleet link's protobuf encoding. */
  const wire = (r: INodeReport): INodeReport => decodeEnvelope(encodeEnvelope({ report: r })).report!;
  const report = (t: number, victimThrottled: number): INodeReport =>
    wire({
      nodeName: 'n1',
      timeUnixMs: t,
      node: { cpuCores: 4, cpuPressure: { someAvg10: 10 }, memoryPressure: { someAvg10: 20 } },
      pods: [
        { namespace: 'ns', name: 'noisy', containers: [{ id: 'a', cpuUsageCores: 2.1, cpuPeriodsTotal: 0, memoryWorkingSetBytes: 300 << 20 }] },
        {
          namespace: 'ns',
          name: 'victim',
          containers: [{ id: 'b', cpuUsageCores: 0.2, cpuPeriodsTotal: t / 100, cpuThrottledPeriodsTotal: victimThrottled, memoryWorkingSetBytes: 100 << 20 }],
        },
      ],
    });

  it("attributes co-residents' throttling and memory pressure to the pod above its request", () => {
    const h = new NeighbourHistory({ nowMs: 60_000, windowMs: 3600_000, weights: DEFAULT_NEIGHBOUR_SETTINGS.weights });
    const lookup = (_ns: string, name: string) => facts(name === 'noisy' ? 0.1 : 0.5);
    h.ingest('n1', report(10_000, 0), lookup, 10_000);
    h.ingest('n1', report(20_000, 50), lookup, 20_000); // 100 periods, 50 throttled
    const byName = new Map(h.signals(20_000).map((p) => [p.name, p.signals.worst]));
    expect(byName.get('noisy')!.cpuOverRequest).toBeCloseTo(2 / 4);
    expect(byName.get('noisy')!.inflictedThrottling).toBeCloseTo(0.5);
    expect(byName.get('noisy')!.memoryPressure).toBeCloseTo(0.2 * 0.75);
    expect(byName.get('victim')!.inflictedThrottling).toBe(0);
    expect(h.nodes(20_000)).toBe(1);
    // forgotten after a window without reports
    expect(h.signals(20_000 + 3600_001)).toEqual([]);
  });

  it('counts restarts and OOM kills seen in the span', () => {
    const h = new NeighbourHistory({ nowMs: 60_000, windowMs: 3600_000, weights: DEFAULT_NEIGHBOUR_SETTINGS.weights });
    let restarts = 0;
    const lookup = () => ({ ...facts(1), restarts, oomKilled: true });
    h.ingest('n1', report(10_000, 0), lookup, 10_000);
    restarts = 2;
    h.ingest('n1', report(20_000, 0), lookup, 20_000);
    const [p] = h.signals(20_000);
    expect(p!.signals.usual).toMatchObject({ restarts: 2, ooms: 2 });
    expect(h.signals(200_000)[0]!.signals.now).toMatchObject({ restarts: 0 });
  });
});
