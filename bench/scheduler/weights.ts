// bench/scheduler/weights.ts: how Nemutator's DEFAULT_WEIGHTS were chosen — a small grid of
// weight sets replayed on several seeds against the default and Trimaran baselines (the
// same simulator as run.ts). Prints, per weight set, how many seeds meet all three
// acceptance clauses and the mean ratios: node-hours / min(default, Trimaran), hot-node
// minutes / default, (unschedulable minutes + 5) / (default's + 5).
// Seeds 5–8 of run.ts's sweep are held out: tune on the others.
// `npx tsx bench/scheduler/weights.ts` (SEEDS=1,2,3,4,9,…,16 PODS=550 NODES=50, ONLY='{"offPeakPack":0.5}').
import { generateDay } from '#controller/scheduler/simulate/day.js';
import { compareScorers, simulate } from '#controller/scheduler/simulate/simulator.js';

const seeds = (process.env.SEEDS ?? '1,2,3,4,9,10,11,12,13,14,15,16').split(',').map(Number);
const pods = Number(process.env.PODS ?? 550);
const nodes = Number(process.env.NODES ?? 50);
const base = seeds.map((seed) => {
  const [d, t] = compareScorers({ seed, nodes, pods }, ['default', 'trimaran']);
  return { seed, d: d!, t: t! };
});
const grid: Array<Record<string, number>> = [];
for (const offPeakPack of [0.2, 0.25, 0.35])
  for (const neighbours of [1, 1.5, 2]) for (const headroomCpu of [0.85, 0.9]) grid.push({ offPeakPack, neighbours, headroomCpu });
for (const weights of process.env.ONLY ? [JSON.parse(process.env.ONLY) as Record<string, number>] : grid) {
  let pass = 0;
  let nh = 0;
  let hot = 0;
  let uns = 0;
  const parts: string[] = [];
  for (const b of base) {
    const day = generateDay({ seed: b.seed, peakPods: pods });
    const n = simulate({ seed: b.seed, nodes, pods, scorer: 'nemutator', day, weights });
    const fewer = n.nodeHours < Math.min(b.d.nodeHours, b.t.nodeHours);
    if (fewer && n.hotNodeMinutes <= b.d.hotNodeMinutes && n.unschedulableMinutes <= b.d.unschedulableMinutes) pass++;
    nh += n.nodeHours / Math.min(b.d.nodeHours, b.t.nodeHours);
    hot += (n.hotNodeMinutes + 60) / (b.d.hotNodeMinutes + 60);
    uns += (n.unschedulableMinutes + 5) / (b.d.unschedulableMinutes + 5);
    parts.push(`${n.nodeHours}/${n.hotNodeMinutes}/${n.unschedulableMinutes}`);
  }
  const k = base.length;
  console.log(
    JSON.stringify(weights),
    `pass ${pass}/${k}`,
    `node-hours ${(nh / k).toFixed(3)} hot ${(hot / k).toFixed(3)} unschedulable ${(uns / k).toFixed(3)}`,
    parts.join(' '),
  );
}
