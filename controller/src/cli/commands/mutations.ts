import { ErrorCodes, NemuError } from '#common/errors.js';

import { type Command, table } from '../command.ts';

interface Entry {
  id: string;
  kind: string;
  namespace: string;
  name?: string;
  generateName?: string;
  owner?: { kind: string; name: string };
  operation: string;
  verbs: string[];
  user?: string;
  time: string;
  rolledBack?: { time: string };
}

const USAGE = 'nemutator mutations list [--namespace NS] [--name NAME] [--kind KIND] [--limit N] | get ID | rollback ID';

function flags(args: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < args.length; i++) {
    const m = /^--?(namespace|name|kind|limit|n)(?:=(.*))?$/.exec(args[i]!);
    if (!m) throw new NemuError(ErrorCodes.BAD_REQUEST, `unknown argument ${args[i]}; usage: ${USAGE}`);
    out[m[1] === 'n' ? 'namespace' : m[1]!] = m[2] ?? args[++i] ?? '';
  }
  return out;
}

export const mutationsCommand: Command = {
  name: 'mutations',
  summary: 'The mutation log: what nemutator changed, and rollback.',
  usage: USAGE,
  async run(ctx) {
    const [verb, ...args] = ctx.args;
    if (verb === 'get' || verb === 'rollback') {
      const id = args[0];
      if (!id) throw new NemuError(ErrorCodes.BAD_REQUEST, `mutations ${verb} needs an ID; usage: ${USAGE}`);
      if (verb === 'get') return void ctx.out(JSON.stringify(await ctx.client.json('GET', `/api/v1/mutations/${encodeURIComponent(id)}`), null, 2));
      const r = await ctx.client.json<{
        kind: string;
        namespace: string;
        name: string;
        action: string;
        skipRule: { kind: string; name: string; verbs: string[] };
      }>('POST', `/api/v1/mutations/${encodeURIComponent(id)}/rollback`);
      if (ctx.config.output === 'json') return void ctx.out(JSON.stringify(r, null, 2));
      return void ctx.out(
        `${r.kind} ${r.namespace}/${r.name} ${r.action}; ${r.skipRule.kind} ${r.skipRule.name} is no longer mutated with: ${r.skipRule.verbs.join(' ')}`,
      );
    }
    if (verb !== undefined && verb !== 'list') {
      ctx.err(`nemutator mutations: unknown action "${verb}"; usage: ${USAGE}`);
      return 2;
    }
    const q = new URLSearchParams(flags(args)).toString();
    const { items } = await ctx.client.json<{ items: Entry[] }>('GET', `/api/v1/mutations${q ? `?${q}` : ''}`);
    if (ctx.config.output === 'json') return void ctx.out(JSON.stringify(items, null, 2));
    if (items.length === 0) return void ctx.out('No mutations logged yet.');
    ctx.out(
      table(
        ['ID', 'TIME', 'KIND', 'NAMESPACE', 'NAME', 'OP', 'VERBS', 'USER', 'ROLLED BACK'],
        items.map((e) => [
          e.id,
          e.time,
          e.kind,
          e.namespace,
          e.name ?? `${e.generateName ?? ''}*`,
          e.operation,
          e.verbs.join(','),
          e.user ?? '-',
          e.rolledBack ? 'yes' : '',
        ]),
      ),
    );
  },
};
