import { ErrorCodes, NemuError } from '#common/errors.js';

import { type Command, table } from '../command.ts';

const USAGE = 'nemutator dict set KEY VALUE | get KEY | del KEY | list [PREFIX] [-o json]';

export const dictCommand: Command = {
  name: 'dict',
  summary: 'Manage the dictionary (nemu_ placeholders and their real values).',
  usage: USAGE,
  async run(ctx) {
    const [verb, key, ...rest] = ctx.args;
    const path = (k: string) => `/api/v1/dictionary/${encodeURIComponent(k)}`;
    const need = (what: string) => {
      throw new NemuError(ErrorCodes.BAD_REQUEST, `dict ${verb} needs ${what}; usage: ${USAGE}`);
    };
    switch (verb) {
      case 'set': {
        if (!key || rest.length === 0) need('KEY and VALUE');
        await ctx.client.json('PUT', path(key!), { value: rest.join(' ') });
        return void ctx.out(`${key} set`);
      }
      case 'get': {
        if (!key) need('KEY');
        const e = await ctx.client.json<{ key: string; value: string }>('GET', path(key!));
        return void ctx.out(ctx.config.output === 'json' ? JSON.stringify(e, null, 2) : e.value);
      }
      case 'del':
      case 'delete': {
        if (!key) need('KEY');
        await ctx.client.json('DELETE', path(key!));
        return void ctx.out(`${key} deleted`);
      }
      case 'list':
      case undefined: {
        const q = key ? `?prefix=${encodeURIComponent(key)}` : '';
        const { items, backend } = await ctx.client.json<{ backend: string; items: Array<{ key: string; value: string }> }>('GET', `/api/v1/dictionary${q}`);
        if (ctx.config.output === 'json') return void ctx.out(JSON.stringify(items, null, 2));
        if (items.length === 0) return void ctx.out(`The dictionary (${backend}) is empty${key ? ` under ${key}` : ''}.`);
        return void ctx.out(
          table(
            ['KEY', 'VALUE'],
            items.map((e) => [e.key, e.value.length > 80 ? e.value.slice(0, 77) + '...' : e.value]),
          ),
        );
      }
      default:
        ctx.err(`nemutator dict: unknown action "${verb}"; usage: ${USAGE}`);
        return 2;
    }
  },
};
