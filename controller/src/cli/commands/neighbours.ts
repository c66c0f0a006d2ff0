import { ErrorCodes, NemuError } from '#common/errors.js';

import type { NeighbourExplanation } from '../../scheduler/neighbours.ts';
import { type Command, table } from '../command.ts';

const USAGE = 'nemutator neighbours [-n NAMESPACE] [--explain] [-o json]';

interface NeighboursAnswer {
  nodes: number;
  highSlots: number;
  items: NeighbourExplanation[];
}

const pct = (x: number) => `${Math.round(x * 100)}%`;

/** Why a workload scores what it does: its biggest signals for `worst`, in words. */
function why(w: NeighbourExplanation): string {
  const e = w.explain.worst;
  const s = e.signals;
  const parts: string[] = [];
  if (s.cpuOverRequest > 0) parts.push(`${pct(s.cpuOverRequest)} of a node above request`);
  if (s.inflictedThrottling > 0) parts.push(`co-residents throttled ${pct(s.inflictedThrottling)} (its share)`);
  if (s.memoryPressure > 0) parts.push(`memory PSI ${pct(s.memoryPressure)} (its share)`);
  if (s.memoryGrowth > 0) parts.push(`memory +${pct(s.memoryGrowth)}`);
  if (s.restarts > 0) parts.push(`${s.restarts} restart(s)${s.ooms > 0 ? `, ${s.ooms} OOM` : ''}`);
  const head = parts.length > 0 ? parts.join('; ') : 'quiet';
  return `${head} — raw ${e.raw}, rank ${pct(e.rank)}, gate ${pct(e.gate)}${e.capped ? ', capped below high (no high slot left)' : ''}`;
}

export const neighboursCommand: Command = {
  name: 'neighbours',
  summary: 'Bad-neighbour scores (now, usual, worst; 0-100) of every workload, and why.',
  usage: USAGE,
  async run(ctx) {
    const query = new URLSearchParams();
    let explain = false;
    const args = ctx.args;
    for (let i = 0; i < args.length; i++) {
      const a = args[i]!;
      if (a === '--explain') {
        explain = true;
        continue;
      }
      const m = /^(-n|--namespace)(?:=(.*))?$/.exec(a);
      if (!m) throw new NemuError(ErrorCodes.BAD_REQUEST, `unknown argument ${a}; usage: ${USAGE}`);
      const value = m[2] ?? args[++i];
      if (!value) throw new NemuError(ErrorCodes.BAD_REQUEST, `${m[1]} needs a value; usage: ${USAGE}`);
      query.set('namespace', value);
    }
    const qs = query.toString();
    const answer = await ctx.client.json<NeighboursAnswer>('GET', `/api/v1/neighbours${qs ? `?${qs}` : ''}`);
    if (ctx.config.output === 'json') return void ctx.out(JSON.stringify(answer, null, 2));
    if (answer.items.length === 0) return void ctx.out('No neighbour scores yet: no agent has reported pods the controller knows.');
    const rows = answer.items.map((w) => [
      w.workload.namespace,
      `${w.workload.kind}/${w.workload.name}`,
      w.pods.length,
      `${w.scores.now} ${w.explain.now.bucket}`,
      `${w.scores.usual} ${w.explain.usual.bucket}`,
      `${w.scores.worst} ${w.explain.worst.bucket}`,
      why(w),
    ]);
    ctx.out(table(['NAMESPACE', 'WORKLOAD', 'PODS', 'NOW', 'USUAL', 'WORST', 'WHY (worst)'], rows));
    ctx.err(`${answer.nodes} node(s); at most ${answer.highSlots} workload(s) may be high. Formula: docs/neighbours.md`);
    if (explain)
      for (const w of answer.items) ctx.out(`\n${w.workload.namespace}/${w.workload.kind}/${w.workload.name}\n${JSON.stringify(w.explain, null, 2)}`);
  },
};
