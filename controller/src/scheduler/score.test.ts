import { describe, expect, it } from 'vitest';

import { DEFAULT_WEIGHTS, fitsWithHeadroom, type NodeFacts, type PodFacts, scoreNode, type ScoringContext } from './score.ts';

const GiB = 1024 ** 3;
const pod = (over: Partial<PodFacts> = {}): PodFacts => ({
  requests: { cpuMillis: 500, memoryBytes: GiB },
  predicted: { cpuMillis: 400, memoryBytes: GiB },
  ...over,
});
/** An 8-CPU / 32 GiB node whose agent reported `cpu` millicores and `memGiB` in use 2 s ago. */
const node = (cpu: number, memGiB = 4, over: Partial<NodeFacts> = {}): NodeFacts => ({
  name: 'n',
  allocatable: { cpuMillis: 8000, memoryBytes: 32 * GiB },
  requested: { cpuMillis: cpu, memoryBytes: memGiB * GiB },
  usage: { cpuMillis: cpu, memoryBytes: memGiB * GiB },
  reportAgeMs: 2000,
  placedSinceReport: { cpuMillis: 0, memoryBytes: 0 },
  familiars: 0,
  residentsNeighbourWorst: [],
  ...over,
});
const peak: ScoringContext = { season: 'peak', staleAfterMs: 60_000 };
const offpeak: ScoringContext = { season: 'offpeak', staleAfterMs: 60_000 };

describe('scoreNode', () => {
  it('is an integer between 0 and 10 for every kind of input, garbage included', () => {
    const weird: NodeFacts[] = [
      node(0),
      node(8000, 32),
      node(20_000, 100),
      node(Number.NaN),
      node(1000, 4, { allocatable: { cpuMillis: 0, memoryBytes: 0 } }),
      node(1000, 4, { psi: { cpuSome10: 400, memorySome10: -3 }, familiars: 99, residentsNeighbourWorst: [100, Number.NaN] }),
    ];
    for (const n of weird)
      for (const ctx of [peak, offpeak])
        for (const p of [pod(), pod({ neighbourWorst: 100 }), pod({ predicted: { cpuMillis: Number.POSITIVE_INFINITY, memoryBytes: 0 } })]) {
          const s = scoreNode(p, n, ctx);
          expect(Number.isInteger(s), `${s}`).toBe(true);
          expect(s).toBeGreaterThanOrEqual(0);
          expect(s).toBeLessThanOrEqual(10);
        }
  });

  it('at peak spreads: the less loaded of two otherwise equal nodes scores higher', () => {
    expect(scoreNode(pod(), node(1000), peak)).toBeGreaterThan(scoreNode(pod(), node(5000), peak));
  });

  it('at peak, of two equally loaded nodes the one whose requests the pod fills best scores higher (whole nodes stay free for large pods)', () => {
    const requested = (cpuMillis: number) => ({ requested: { cpuMillis, memoryBytes: 4 * GiB } });
    expect(scoreNode(pod(), node(2000, 4, requested(6000)), peak)).toBeGreaterThan(scoreNode(pod(), node(2000, 4, requested(1000)), peak));
  });

  it('off-peak packs: the fuller node that still fits scores higher than the emptier one', () => {
    expect(scoreNode(pod(), node(6000), offpeak)).toBeGreaterThan(scoreNode(pod(), node(500), offpeak));
  });

  it('headroom first: a node the pod would push past the headroom scores below every node it fits, whatever else is true', () => {
    const over = node(6900); // 6.9 + 0.4 CPU = 91 % > 90 % headroom
    expect(fitsWithHeadroom(pod(), over)).toBe(false);
    expect(fitsWithHeadroom(pod(), node(6500))).toBe(true);
    // The worst node that still fits: empty, pressured, full of replicas and noisy residents.
    const unlovely = node(0, 0, { psi: { cpuSome10: 100, memorySome10: 100 }, familiars: 9, residentsNeighbourWorst: [100] });
    for (const ctx of [peak, offpeak])
      expect(scoreNode(pod({ neighbourWorst: 100 }), over, ctx)).toBeLessThan(scoreNode(pod({ neighbourWorst: 100 }), unlovely, ctx));
  });

  it('where the pod fits no node with headroom, the node whose residents leave the most room wins', () => {
    const big = pod({ predicted: { cpuMillis: 7800, memoryBytes: GiB } }); // a noisy pod whose peak fills a node alone
    expect(fitsWithHeadroom(big, node(0))).toBe(false);
    expect(scoreNode(big, node(500), peak)).toBeGreaterThan(scoreNode(big, node(5000), peak));
    expect(scoreNode(big, node(500), offpeak)).toBeGreaterThan(scoreNode(big, node(5000), offpeak));
  });

  it('memory counts too: a node short of memory headroom does not fit', () => {
    expect(fitsWithHeadroom(pod({ predicted: { cpuMillis: 100, memoryBytes: 4 * GiB } }), node(1000, 24))).toBe(false);
    expect(scoreNode(pod(), node(1000, 4), peak)).toBeGreaterThan(scoreNode(pod(), node(1000, 25), peak));
  });

  it('anti-herding: pods placed since the report count as load, so a node stops fitting before its agent says so', () => {
    const herded = node(1000, 4, { placedSinceReport: { cpuMillis: 5900, memoryBytes: 8 * GiB } });
    expect(fitsWithHeadroom(pod(), herded)).toBe(false);
    expect(scoreNode(pod(), herded, peak)).toBeLessThan(scoreNode(pod(), node(1000), peak));
  });

  it("residents' predicted (peak) usage counts: a node quiet now but busy at its residents' peak does not fit", () => {
    const quietNow = node(1000, 4, { residentsPredicted: { cpuMillis: 6900, memoryBytes: 4 * GiB } });
    expect(fitsWithHeadroom(pod(), node(1000))).toBe(true);
    expect(fitsWithHeadroom(pod(), quietNow)).toBe(false);
    expect(scoreNode(pod(), quietNow, offpeak)).toBeLessThan(scoreNode(pod(), node(1000), offpeak));
    // Without the optional field, only the report counts (the shared contract as first written).
    expect(scoreNode(pod(), node(1000, 4, { residentsPredicted: undefined }), offpeak)).toBe(scoreNode(pod(), node(1000), offpeak));
  });

  it('anti-herding: a burst scored within one report interval spreads at peak and stops at the headroom off-peak', () => {
    // 20 pods of 400m predicted arrive before either node's agent reports again.
    const burst = (ctx: ScoringContext) => {
      const nodes = [node(1000, 4, { name: 'a' }), node(1000, 4, { name: 'b' })];
      const picks: string[] = [];
      for (let i = 0; i < 20; i++) {
        const scores = nodes.map((n) => scoreNode(pod(), n, ctx));
        const best = nodes[scores[0]! >= scores[1]! ? 0 : 1]!;
        picks.push(best.name);
        best.placedSinceReport = { cpuMillis: best.placedSinceReport.cpuMillis + 400, memoryBytes: best.placedSinceReport.memoryBytes + GiB };
      }
      return picks;
    };
    const atPeak = burst(peak);
    expect(atPeak.filter((n) => n === 'a').length).toBeGreaterThanOrEqual(8);
    expect(atPeak.filter((n) => n === 'b').length).toBeGreaterThanOrEqual(8);
    // Off-peak one node fills, but only up to the 90 % headroom — 15 pods: (1000 + 15·400)/8000 = 87.5 % —
    // then the other.
    expect(burst(offpeak)).toEqual([...Array(15).fill('a'), ...Array(5).fill('b')]);
  });

  it('pressure lowers the score: a node with PSI scores below an equal calm one', () => {
    const pressed = node(2000, 4, { psi: { cpuSome10: 0, memorySome10: 20 } });
    expect(scoreNode(pod(), pressed, peak)).toBeLessThan(scoreNode(pod(), node(2000), peak));
    expect(scoreNode(pod(), pressed, offpeak)).toBeLessThan(scoreNode(pod(), node(2000), offpeak));
  });

  it('familiars are negative: a node with three replicas of the workload scores lower for a fourth', () => {
    for (const ctx of [peak, offpeak]) expect(scoreNode(pod(), node(2000, 4, { familiars: 3 }), ctx)).toBeLessThan(scoreNode(pod(), node(2000), ctx));
  });

  it('a noisy pod avoids noisy residents; a quiet pod shares with them', () => {
    const noisyHome = node(2000, 4, { residentsNeighbourWorst: [10, 95] });
    const quietHome = node(2000, 4, { residentsNeighbourWorst: [10, 15] });
    const noisy = pod({ neighbourWorst: 90 });
    const quiet = pod({ neighbourWorst: 5 });
    for (const ctx of [peak, offpeak]) {
      expect(scoreNode(noisy, noisyHome, ctx)).toBeLessThan(scoreNode(noisy, quietHome, ctx));
      expect(scoreNode(quiet, noisyHome, ctx)).toBe(scoreNode(quiet, quietHome, ctx));
    }
    // Below the threshold (70) nothing conflicts, and an unknown score counts as the median (50).
    expect(scoreNode(pod({ neighbourWorst: 65 }), node(2000, 4, { residentsNeighbourWorst: [68] }), peak)).toBe(scoreNode(pod(), node(2000), peak));
    expect(scoreNode(pod(), noisyHome, peak)).toBe(scoreNode(pod(), quietHome, peak));
  });

  it('stale or missing agent data is neutral (5), never an error', () => {
    const ctx = peak;
    expect(scoreNode(pod(), node(7900, 30, { reportAgeMs: 120_000 }), ctx)).toBe(5);
    expect(scoreNode(pod(), node(7900, 30, { reportAgeMs: undefined }), ctx)).toBe(5);
    expect(scoreNode(pod(), node(0, 0, { usage: undefined, reportAgeMs: undefined }), offpeak)).toBe(5);
    // Familiars and neighbours do not come from the agent: they still count on a stale node.
    expect(scoreNode(pod({ neighbourWorst: 100 }), node(0, 0, { reportAgeMs: undefined, residentsNeighbourWorst: [100] }), ctx)).toBeLessThan(5);
  });

  it('weights can be overridden per call; zero load weight removes the season', () => {
    const w = { ...DEFAULT_WEIGHTS, load: 0 };
    expect(scoreNode(pod(), node(500), { ...offpeak, weights: w })).toBe(scoreNode(pod(), node(4000), { ...offpeak, weights: w }));
  });
});
