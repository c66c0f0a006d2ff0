/**
 * `nemutator simulate`: replays a generated, seeded day of a cluster with kube-scheduler's
 * default scoring, Trimaran TargetLoadPacking and Nemutator's scoring, and prints node-hours,
 * hot-node minutes, pods next to a bad neighbour and unschedulable minutes side by side.
 * Runs locally; needs no controller. The model: docs/scheduler-simulator.md.
 */
import { ErrorCodes, NemuError } from '#common/errors.js';

import { DEFAULT_WEIGHTS, type ScoreWeights } from '../../scheduler/score.ts';
import { type ScorerName, SCORERS } from '../../scheduler/simulate/scorers.ts';
import { compareScorers, type SimulationResult } from '../../scheduler/simulate/simulator.ts';
import { type Command, table } from '../command.ts';

const USAGE =
  'nemutator simulate [--nodes 50] [--pods 550] [--seed 1] [--scorer all|default|trimaran|nemutator] [--provision-minutes 2] [--empty-minutes 10] [--weights JSON] [--json]';

export interface SimulateFlags {
  nodes: number;
  pods: number;
  seed: number;
  scorers: ScorerName[];
  provisionMinutes: number;
  emptyMinutes: number;
  /** Nemutator's weights other than DEFAULT_WEIGHTS, e.g. {"offPeakPack":0.5} (to see the trade-offs). */
  weights?: Partial<ScoreWeights>;
  json: boolean;
}

function parseWeights(text: string): Partial<ScoreWeights> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  const known = Object.keys(DEFAULT_WEIGHTS);
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw new NemuError(ErrorCodes.BAD_REQUEST, `--weights ${text}: expected a JSON object such as {"offPeakPack":0.5}`);
  for (const [k, v] of Object.entries(parsed))
    if (!known.includes(k) || typeof v !== 'number' || !Number.isFinite(v))
      throw new NemuError(ErrorCodes.BAD_REQUEST, `--weights: ${k} must be one of ${known.join(', ')} with a number`);
  return parsed as Partial<ScoreWeights>;
}

const NUMERIC = { nodes: 'nodes', pods: 'pods', seed: 'seed', 'provision-minutes': 'provisionMinutes', 'empty-minutes': 'emptyMinutes' } as const;

export function parseSimulateFlags(args: string[]): SimulateFlags {
  const f: SimulateFlags = { nodes: 50, pods: 550, seed: 1, scorers: SCORERS, provisionMinutes: 2, emptyMinutes: 10, json: false };
  for (let i = 0; i < args.length; i++) {
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(args[i]!);
    const name = m?.[1] ?? '';
    if (name === 'json') {
      f.json = true;
      continue;
    }
    const value = m?.[2] ?? args[++i] ?? '';
    if (name === 'weights') f.weights = parseWeights(value);
    else if (name === 'scorer') {
      if (value !== 'all' && !SCORERS.includes(value as ScorerName))
        throw new NemuError(ErrorCodes.BAD_REQUEST, `--scorer ${value}: expected all, ${SCORERS.join(', ')}`);
      f.scorers = value === 'all' ? SCORERS : [value as ScorerName];
    } else if (name in NUMERIC) {
      const n = Number(value);
      const min = name === 'seed' || name === 'provision-minutes' || name === 'empty-minutes' ? 0 : 1;
      if (!Number.isInteger(n) || n < min) throw new NemuError(ErrorCodes.BAD_REQUEST, `--${name} ${value}: expected an integer ≥ ${min}`);
      f[NUMERIC[name as keyof typeof NUMERIC]] = n;
    } else throw new NemuError(ErrorCodes.BAD_REQUEST, `unknown argument ${args[i]}; usage: ${USAGE}`);
  }
  return f;
}

export function renderSimulation(results: SimulationResult[]): string {
  const first = results[0]!;
  const rows = results.map((r) => [
    r.scorer,
    r.nodeHours.toFixed(1),
    r.hotNodeMinutes.toFixed(1),
    r.badNeighbourPods,
    r.unschedulableMinutes.toFixed(1),
    r.unschedulablePodMinutes.toFixed(1),
    `+${r.nodesAdded}/−${r.nodesRemoved}`,
    `${r.minNodesSeen}–${r.maxNodesSeen}`,
  ]);
  return [
    `seed ${first.seed}: ${first.initialNodes} nodes at 00:00, ${first.podsCreated} pods over the day`,
    table(['SCORER', 'NODE-HOURS', 'HOT-NODE MIN', 'PODS BY BAD NEIGHBOUR', 'UNSCHEDULABLE MIN', 'PENDING POD-MIN', 'NODES +/−', 'NODES MIN–MAX'], rows),
  ].join('\n');
}

export const simulateCommand: Command = {
  name: 'simulate',
  summary: 'Replay a generated day of a cluster with the default, Trimaran and Nemutator scoring.',
  usage: USAGE,
  async run(ctx) {
    const f = parseSimulateFlags(ctx.args);
    const results = compareScorers(
      {
        seed: f.seed,
        nodes: f.nodes,
        pods: f.pods,
        provisionMinutes: f.provisionMinutes,
        scaleDownEmptyMinutes: f.emptyMinutes,
        ...(f.weights ? { weights: f.weights } : {}),
      },
      f.scorers,
    );
    ctx.out(f.json || ctx.config.output === 'json' ? JSON.stringify(results, null, 2) : renderSimulation(results));
  },
};
