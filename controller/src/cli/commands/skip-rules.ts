import { ErrorCodes, NemuError } from '#common/errors.js';

import type { SkipRule } from '../../admission/skip-rules.ts';
import { type Command, table } from '../command.ts';

const USAGE = 'nemutator skip-rules list [--namespace NS] | delete NAMESPACE KIND NAME';

export const skipRulesCommand: Command = {
  name: 'skip-rules',
  summary: 'Workloads no longer mutated with some verbs (written by rollbacks), and lifting them.',
  usage: USAGE,
  async run(ctx) {
    const [verb, ...args] = ctx.args;
    if (verb === 'delete' || verb === 'del') {
      const [namespace, kind, name] = args;
      if (!namespace || !kind || !name || args.length > 3)
        throw new NemuError(ErrorCodes.BAD_REQUEST, `skip-rules ${verb} needs NAMESPACE KIND NAME; usage: ${USAGE}`);
      await ctx.client.json('DELETE', `/api/v1/skip-rules/${[namespace, kind, name].map(encodeURIComponent).join('/')}`);
      return void ctx.out(`${kind} ${namespace}/${name} is mutated again (for objects created from now on)`);
    }
    if (verb !== undefined && verb !== 'list') {
      ctx.err(`nemutator skip-rules: unknown action "${verb}"; usage: ${USAGE}`);
      return 2;
    }
    let namespace = '';
    for (let i = 0; i < args.length; i++) {
      const m = /^(?:--namespace|-n)(?:=(.*))?$/.exec(args[i]!);
      if (!m) throw new NemuError(ErrorCodes.BAD_REQUEST, `unknown argument ${args[i]}; usage: ${USAGE}`);
      namespace = m[1] ?? args[++i] ?? '';
    }
    const { items } = await ctx.client.json<{ items: SkipRule[] }>(
      'GET',
      `/api/v1/skip-rules${namespace ? `?namespace=${encodeURIComponent(namespace)}` : ''}`,
    );
    if (ctx.config.output === 'json') return void ctx.out(JSON.stringify(items, null, 2));
    if (items.length === 0) return void ctx.out(`No skip rules${namespace ? ` in ${namespace}` : ''}.`);
    ctx.out(
      table(
        ['NAMESPACE', 'KIND', 'NAME', 'VERBS', 'MUTATION', 'CREATED', 'USER'],
        items.map((r) => [r.namespace, r.kind, r.name, r.verbs.join(','), r.mutationId ?? '-', r.createdAt, r.user ?? '-']),
      ),
    );
  },
};
