import { ErrorCodes, NemuError } from '#common/errors.js';

import type { AuditEntry } from '../../audit/log.ts';
import { type Command, table } from '../command.ts';

const USAGE = 'nemutator audit [--user NAME] [--namespace NS] [--limit N]';

function describeTarget(t: Record<string, string>): string {
  const parts = Object.entries(t).filter(([k]) => k !== 'namespace');
  return parts.length === 0 ? '-' : parts.map(([k, v]) => `${k}=${v}`).join(' ');
}

export const auditCommand: Command = {
  name: 'audit',
  summary: 'Who changed what through the REST API (dictionary, rollbacks, skip rules, flips, rotations, profiles), newest first.',
  usage: USAGE,
  async run(ctx) {
    const query = new URLSearchParams();
    const args = ctx.args;
    for (let i = 0; i < args.length; i++) {
      const m = /^(--user|--namespace|-n|--limit)(?:=(.*))?$/.exec(args[i]!);
      if (!m) throw new NemuError(ErrorCodes.BAD_REQUEST, `unknown argument ${args[i]}; usage: ${USAGE}`);
      const value = m[2] ?? args[++i];
      if (!value) throw new NemuError(ErrorCodes.BAD_REQUEST, `${m[1]} needs a value; usage: ${USAGE}`);
      query.set(m[1] === '-n' ? 'namespace' : m[1]!.slice(2), value);
    }
    const qs = query.toString();
    const { items } = await ctx.client.json<{ items: AuditEntry[] }>('GET', `/api/v1/audit${qs ? `?${qs}` : ''}`);
    if (ctx.config.output === 'json') return void ctx.out(JSON.stringify(items, null, 2));
    if (items.length === 0) return void ctx.out('No audit records.');
    ctx.out(
      table(
        ['TIME', 'USER', 'ACTION', 'NAMESPACE', 'TARGET', 'OUTCOME'],
        items.map((e) => [
          e.time,
          e.user,
          e.action,
          e.namespace ?? '-',
          describeTarget(e.target),
          e.outcome === 'succeeded' ? 'succeeded' : `${e.outcome} (${e.status}${e.code ? ` ${e.code}` : ''})`,
        ]),
      ),
    );
  },
};
