import { describe, expect, it } from 'vitest';

import { PlacementMemory } from './extender-placements.ts';

const pod = (name: string, workload = 'shop/Deployment/web') => ({
  namespace: 'shop',
  name,
  uid: `uid-${name}`,
  predicted: { cpuMillis: 300, memoryBytes: 100 },
  requests: { cpuMillis: 500, memoryBytes: 200 },
  workload,
});

describe('PlacementMemory (anti-herding)', () => {
  it('counts placed pods on their node until a report received after the placement lists them', () => {
    let now = 1000;
    const m = new PlacementMemory(60_000, () => now);
    m.place('node-a', pod('web-1'));
    m.place('node-a', pod('web-2'));
    // The report received before the placements shows neither.
    expect(m.placedSince('node-a', 900, { pods: [] }).predicted).toEqual({ cpuMillis: 600, memoryBytes: 200 });
    expect(m.placedSince('node-a', 900, { pods: [] }).familiars('shop/Deployment/web')).toBe(2);
    expect(m.placedSince('node-b', 900, { pods: [] }).predicted).toEqual({ cpuMillis: 0, memoryBytes: 0 });
    now = 5000;
    // A newer report that lists web-1 (by uid) carries its usage: only web-2 is still extra.
    expect(m.placedSince('node-a', 4000, { pods: [{ uid: 'uid-web-1', namespace: 'shop', name: 'web-1' }] }).predicted.cpuMillis).toBe(300);
    expect(m.size).toBe(1);
  });

  it('forgets a placement after the TTL, moves it to the node the pod was bound to, and never counts the pod being scored', () => {
    let now = 0;
    const binding: { node?: string } = {};
    const m = new PlacementMemory(
      10_000,
      () => now,
      () => binding.node,
    );
    m.place('node-a', pod('web-1'));
    expect(m.placedSince('node-a', undefined, undefined, 'shop/web-1').predicted.cpuMillis).toBe(0);
    binding.node = 'node-b';
    expect(m.placedSince('node-a', undefined, undefined).predicted.cpuMillis).toBe(0);
    // On its bound node it adds its predicted usage, not its requests (the cluster counts those).
    const onB = m.placedSince('node-b', undefined, undefined);
    expect(onB.predicted.cpuMillis).toBe(300);
    expect(onB.requests.cpuMillis).toBe(0);
    now = 10_001;
    expect(m.placedSince('node-b', undefined, undefined).predicted.cpuMillis).toBe(0);
    expect(m.size).toBe(0);
  });
});
