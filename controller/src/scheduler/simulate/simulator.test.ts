import { describe, expect, it } from 'vitest';

import { generateDay } from './day.ts';
import { defaultScore, type NodeView, type PodView, targetLoadPacking, trimaranScore } from './scorers.ts';
import { compareScorers, podViews, seasonsOfDay, simulate } from './simulator.ts';

// A smaller generated day (20 nodes, ~200 pods at peak, ~800 over the day) that runs in seconds.
const SMALL = { seed: 1, nodes: 20, pods: 200 };

const GiB = 2 ** 30;
function view(requested: { cpuMillis: number; memoryBytes: number }, over: Partial<NodeView> = {}): NodeView {
  return {
    name: 'n',
    allocatable: { cpuMillis: 4000, memoryBytes: 10 * GiB },
    requested,
    placedSinceReport: [],
    familiars: () => 0,
    residentsNeighbourWorst: () => [],
    residentsPredicted: () => ({ cpuMillis: 0, memoryBytes: 0 }),
    ...over,
  };
}
const pod: PodView = { workload: 0, requests: { cpuMillis: 1000, memoryBytes: 2 * GiB }, predicted: { cpuMillis: 800, memoryBytes: GiB }, neighbourWorst: 50 };

describe('baseline scorers follow their published formulas', () => {
  it('default: LeastAllocated + BalancedAllocation on requests including the pod', () => {
    // cpu 3000/4000 → least 25, memory 5/10 GiB → least 50: (25+50)/2 = 37; balanced 1 − |0.75 − 0.5|/2 = 0.875 → 87.
    expect(defaultScore(pod, view({ cpuMillis: 2000, memoryBytes: 3 * GiB }))).toBe(37 + 87);
    // A node the pod would overfill scores 0 for that resource (leastRequestedScore).
    expect(defaultScore(pod, view({ cpuMillis: 3500, memoryBytes: 0 }))).toBe(Math.trunc((0 + 80) / 2) + Math.trunc((1 - (1 - 0.2) / 2) * 100));
  });

  it('Trimaran TargetLoadPacking: peaks at the 40 % target, 40 at idle, 0 at and above 100 %', () => {
    expect(targetLoadPacking(0)).toBe(40);
    expect(targetLoadPacking(40)).toBe(100);
    expect(targetLoadPacking(70)).toBe(20); // 40 · (100 − 70) / (100 − 40)
    expect(targetLoadPacking(100)).toBe(0);
    expect(targetLoadPacking(130)).toBe(0);
    const report = { usage: { cpuMillis: 400, memoryBytes: 0 }, psi: { cpuSome10: 0, memorySome10: 0 }, ageMs: 10_000 };
    // 400m used + 1000m × 1.5 predicted = 47.5 % of 4 CPUs: just past the target.
    expect(trimaranScore(pod, view({ cpuMillis: 0, memoryBytes: 0 }, { report }), { season: 'peak', staleAfterMs: 60_000 })).toBe(targetLoadPacking(47.5));
    expect(
      trimaranScore(pod, view({ cpuMillis: 0, memoryBytes: 0 }, { report: { ...report, ageMs: 600_000 } }), { season: 'peak', staleAfterMs: 60_000 }),
    ).toBe(0);
  });
});

describe('scheduling simulator', () => {
  it('the generated day has ≥ 1,000 pods on ≥ 50 nodes at the bench size, and peak/off-peak hours', () => {
    expect(generateDay({ seed: 1, peakPods: 550 }).pods.length).toBeGreaterThanOrEqual(1000);
    const seasons = seasonsOfDay();
    expect(seasons[4]).toBe('offpeak');
    expect(seasons[16]).toBe('peak');
  });

  it("feeds Nemutator telemetry's peak prediction (p95 of peak hours × 1.15), not the pods' actual future", () => {
    const day = generateDay({ seed: 1, peakPods: 200 });
    const views = podViews(day);
    day.workloads.forEach((w, i) => {
      const v = views[i]!;
      if (w.kind === 'noisy') expect(v.predicted.cpuMillis).toBeGreaterThan(1.8 * w.requests.cpuMillis); // above its request at peak
      if (w.kind === 'quiet') expect(v.predicted.cpuMillis).toBeLessThan(0.4 * w.requests.cpuMillis);
      expect(v.predicted.memoryBytes).toBeGreaterThan(0);
    });
    expect(day.workloads.some((w) => w.kind === 'noisy') && day.workloads.some((w) => w.kind === 'quiet')).toBe(true);
  });

  it('is deterministic: the same seed gives the same result, another seed another day', () => {
    const a = simulate({ ...SMALL, scorer: 'nemutator' });
    const b = simulate({ ...SMALL, scorer: 'nemutator' });
    expect(b).toEqual(a);
    expect(simulate({ ...SMALL, seed: 2, scorer: 'nemutator' })).not.toEqual(a);
  });

  it('the autoscaler adds nodes when pods fit nowhere and removes nodes that stay empty', () => {
    const tight = simulate({ seed: 1, nodes: 3, pods: 200, scorer: 'default' });
    expect(tight.nodesAdded).toBeGreaterThan(0);
    expect(tight.maxNodesSeen).toBeGreaterThan(3);
    expect(tight.unschedulableMinutes).toBeGreaterThan(0);
    const roomy = simulate({ seed: 1, nodes: 40, pods: 100, scorer: 'nemutator' });
    expect(roomy.nodesRemoved).toBeGreaterThan(0);
    expect(roomy.minNodesSeen).toBeLessThan(40);
    expect(roomy.nodeHours).toBeLessThan(40 * 24);
  });

  // The acceptance clauses against the default scheduler, on one small seeded day. The
  // clause "fewer node-hours than Trimaran too" is NOT met here (513.2 against Trimaran's
  // 506.2 node-hours on this day) nor on most seeds of the bench sweep (see
  // docs/scheduler-simulator.md), so it is measured in bench/scheduler, not asserted here.
  it('on the small day, Nemutator uses fewer node-hours than the default scheduler with no more hot-node or unschedulable minutes', () => {
    const [def, nemu] = compareScorers(SMALL, ['default', 'nemutator']);
    expect(nemu!.nodeHours).toBeLessThan(def!.nodeHours);
    expect(nemu!.hotNodeMinutes).toBeLessThanOrEqual(def!.hotNodeMinutes);
    expect(nemu!.unschedulableMinutes).toBeLessThanOrEqual(def!.unschedulableMinutes);
  });
});
