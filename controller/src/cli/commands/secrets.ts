import { ErrorCodes, NemuError } from '../../../../common/src/errors.ts';
import { table, type Command } from '../command.ts';
import type { RotateSummary, StatusSummary } from '../../secrets/fanout.ts';

const USAGE = 'nemutator secrets rotate PATH | status [PATH]   (PATH: <mount>/<path>, e.g. secret/app/db)';

function failedNodes(nodes: Array<{ node: string; ok: boolean; error?: { code: string; message: string } }>): string[] {
  return nodes.filter((n) => !n.ok).map((n) => `  ${n.node}: ${n.error?.code ?? ''} ${n.error?.message ?? ''}`.trimEnd());
}

export const secretsCommand: Command = {
  name: 'secrets',
  summary: 'Force a secret rotation on every node, or show who holds which version.',
  usage: USAGE,
  async run(ctx) {
    const [verb, path, ...rest] = ctx.args;
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
