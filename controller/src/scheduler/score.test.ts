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

  it('off-peak packs: the fuller node that still fits scores higher than the emptier one', () => {
    expect(scoreNode(pod(), node(4000), offpeak)).toBeGreaterThan(scoreNode(pod(), node(500), offpeak));
  });

  it('off-peak, a node the pod would push past the headroom scores below an empty one', () => {
    const over = node(4600); // 4.6 + 0.4 CPU = 62.5 % > 60 % headroom
    expect(fitsWithHeadroom(pod(), over)).toBe(false);
    expect(fitsWithHeadroom(pod(), node(4000))).toBe(true);
    expect(scoreNode(pod(), over, offpeak)).toBeLessThan(scoreNode(pod(), node(0), offpeak));
  });

  it('memory counts too: a node short of memory headroom does not fit', () => {
    expect(fitsWithHeadroom(pod({ predicted: { cpuMillis: 100, memoryBytes: 4 * GiB } }), node(1000, 24))).toBe(false);
    expect(scoreNode(pod(), node(1000, 4), peak)).toBeGreaterThan(scoreNode(pod(), node(1000, 24), peak));
  });

  it('anti-herding: pods placed since the report count as load', () => {
    const herded = node(1000, 4, { placedSinceReport: { cpuMillis: 4000, memoryBytes: 8 * GiB } });
    expect(scoreNode(pod(), herded, peak)).toBeLessThan(scoreNode(pod(), node(1000), peak));
    expect(fitsWithHeadroom(pod(), node(1000, 4, { placedSinceReport: { cpuMillis: 3800, memoryBytes: 0 } }))).toBe(false);
  });

  it("off-peak, residents' predicted usage counts: a node quiet now but busy at its residents' peak does not fit", () => {
    const quietNow = node(1000, 4, { residentsPredicted: { cpuMillis: 4600, memoryBytes: 4 * GiB } });
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
    // Off-peak one node fills, but only up to the 60 % headroom — 9 pods: (1000 + 9·400)/8000 = 57.5 % —
    // then the other.
    const offPeak = burst(offpeak);
    expect(offPeak.slice(0, 18).sort().join('')).toBe('a'.repeat(9) + 'b'.repeat(9));
    expect(new Set(offPeak.slice(0, 9)).size).toBe(1);
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
    expect(scoreNode(noisy, noisyHome, peak)).toBeLessThan(scoreNode(noisy, quietHome, peak));
    expect(scoreNode(quiet, noisyHome, peak)).toBe(scoreNode(quiet, quietHome, peak));
  });

  it('stale or missing agent data is neutral (5), never an error', () => {
    const ctx = peak;
    expect(scoreNode(pod(), node(7900, 30, { reportAgeMs: 120_000 }), ctx)).toBe(5);
    expect(scoreNode(pod(), node(7900, 30, { reportAgeMs: undefined }), ctx)).toBe(5);
    expect(scoreNode(pod(), node(0, 0, { usage: undefined, reportAgeMs: undefined }), offpeak)).toBe(5);
    // Familiars and neighbours do not come from the agent: they still count on a stale node.
    expect(scoreNode(pod(), node(0, 0, { reportAgeMs: undefined, familiars: 4 }), ctx)).toBeLessThan(5);
  });

  it('weights can be overridden per call; zero load weight removes the season', () => {
    const w = { ...DEFAULT_WEIGHTS, load: 0 };
    expect(scoreNode(pod(), node(500), { ...offpeak, weights: w })).toBe(scoreNode(pod(), node(4000), { ...offpeak, weights: w }));
  });
});
