import { readFile } from 'node:fs/promises';

import { ErrorCodes, NemuError } from '#common/errors.js';

import type { RotateSummary, StatusSummary } from '../../secrets/fanout.ts';
import { type Command, type CommandContext, table } from '../command.ts';

const USAGE = [
  'nemutator secrets put PATH KEY=VALUE|KEY=-|KEY=@FILE... | rotate PATH | status [PATH]   (PATH: <mount>/<path>, e.g. secret/app/db)',
  '  put (local mode): writes a new version of PATH to the embedded store and pushes it to the programs holding it.',
  '    KEY=-      reads the value from stdin (one trailing newline dropped)',
  '    KEY=@FILE  reads the value from FILE, byte for byte (certificates, keys)',
  '    KEY=VALUE  works too, but the value then sits in your shell history and in ps: prefer - or @FILE.',
  '  Values are never printed back.',
].join('\n');

function failedNodes(nodes: Array<{ node: string; ok: boolean; error?: { code: string; message: string } }>): string[] {
  return nodes.filter((n) => !n.ok).map((n) => `  ${n.node}: ${n.error?.code ?? ''} ${n.error?.message ?? ''}`.trimEnd());
}

export const secretsCommand: Command = {
  name: 'secrets',
  summary: 'Write a secret (local mode), force a rotation on every node, or show who holds which version.',
  usage: USAGE,
  async run(ctx) {
    const [verb, path, ...rest] = ctx.args;
    if (verb === 'put') return put(ctx, path, rest);
    if (rest.length > 0) throw new NemuError(ErrorCodes.BAD_REQUEST, `unexpected argument ${rest[0]}; usage: ${USAGE}`);
    if (verb === 'rotate') {
      if (!path) throw new NemuError(ErrorCodes.BAD_REQUEST, `secrets rotate needs the secret's PATH; usage: ${USAGE}`);
      const r = await ctx.client.json<RotateSummary>('POST', '/api/v1/secrets/rotate', { path });
      if (ctx.config.output === 'json') return void ctx.out(JSON.stringify(r, null, 2));
      const t = r.totals;
      ctx.out(`Rotation of ${r.path}: ${t.answered}/${t.nodes} node(s) answered, ${t.newVersions} new version(s), ${t.watchersNotified} watcher(s) notified.`);
      const failed = failedNodes(r.nodes);
      if (failed.length > 0) {
        ctx.err(`${failed.length} node(s) did not rotate:\n${failed.join('\n')}`);
        return 1;
      }
      return;
    }
    if (verb === 'status') {
      const q = path ? `?${new URLSearchParams({ path }).toString()}` : '';
      const s = await ctx.client.json<StatusSummary>('GET', `/api/v1/secrets/status${q}`);
      if (ctx.config.output === 'json') return void ctx.out(JSON.stringify(s, null, 2));
      if (s.holders.length === 0) ctx.out(s.path ? `No pod holds ${s.path}.` : 'No pod holds a secret served by nemutator.');
      else
        ctx.out(
          table(
            ['NAMESPACE', 'POD', 'CONTAINER', 'PATH', 'VERSION', 'ACKED', 'ACKED AT', 'NODE'],
            s.holders.map((h) => [h.namespace, h.pod, h.container, h.path, h.version, h.ackedVersion || '-', h.ackedAt ?? '-', h.node]),
          ),
        );
      const failed = failedNodes(s.nodes);
      if (failed.length > 0) ctx.err(`${failed.length} node(s) did not answer; their pods are missing above:\n${failed.join('\n')}`);
      return;
    }
    ctx.err(`nemutator secrets: ${verb ? `unknown action "${verb}"` : 'an action is needed'}; usage: ${USAGE}`);
    return 2;
  },
};

/** The values of KEY=VALUE, KEY=- (stdin, once) and KEY=@FILE arguments; the values are never printed. */
export async function readSecretData(pairs: string[], stdin: () => Promise<string>): Promise<{ data: Record<string, string>; inline: string[] }> {
  const data: Record<string, string> = {};
  const inline: string[] = [];
  let stdinUsed = false;
  for (const [i, pair] of pairs.entries()) {
    const eq = pair.indexOf('=');
    // Not echoed: a mistyped argument may be the value itself.
    if (eq <= 0) throw new NemuError(ErrorCodes.BAD_REQUEST, `argument ${i + 1} after PATH is not KEY=VALUE, KEY=- or KEY=@FILE`);
    const key = pair.slice(0, eq);
    const spec = pair.slice(eq + 1);
    if (key in data) throw new NemuError(ErrorCodes.BAD_REQUEST, `key ${key} is given twice`);
    if (spec === '-') {
      if (stdinUsed) throw new NemuError(ErrorCodes.BAD_REQUEST, `only one key can read stdin; use KEY=@FILE for ${key}`);
      stdinUsed = true;
      data[key] = (await stdin()).replace(/\r?\n$/, '');
    } else if (spec.startsWith('@')) {
      try {
        data[key] = await readFile(spec.slice(1), 'utf8');
      } catch (e) {
        throw new NemuError(
          ErrorCodes.BAD_REQUEST,
          `cannot read the value of ${key} from ${spec.slice(1)}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
        );
      }
    } else {
      data[key] = spec;
      inline.push(key);
    }
  }
  return { data, inline };
}

async function put(ctx: CommandContext, path: string | undefined, pairs: string[]): Promise<number | void> {
  if (!path || pairs.length === 0) throw new NemuError(ErrorCodes.BAD_REQUEST, `secrets put needs PATH and at least one KEY=VALUE; usage: ${USAGE}`);
  const { data, inline } = await readSecretData(pairs, ctx.stdin);
  if (inline.length > 0)
    ctx.err(`note: the value of ${inline.join(', ')} was given on the command line (shell history, ps); next time use KEY=- (stdin) or KEY=@FILE`);
  const r = await ctx.client.json<{ path: string; version: number; keys: string[] }>('POST', '/api/v1/secrets/values', { path, data });
  if (ctx.config.output === 'json') return void ctx.out(JSON.stringify(r, null, 2));
  ctx.out(`${r.path}: version ${r.version} written (keys: ${r.keys.join(', ')}); programs holding it get it now.`);
}
