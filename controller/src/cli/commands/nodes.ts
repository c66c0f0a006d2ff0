import type { NodeSummary } from '../../fleet/registry.ts';
import { type Command, table } from '../command.ts';

const GiB = 1024 ** 3;

export const nodesCommand: Command = {
  name: 'nodes',
  summary: 'Nodes whose agents report to the controller, with live usage.',
  usage: 'nemutator nodes [NAME] [-o json]',
  async run(ctx) {
    const name = ctx.args[0];
    if (name) {
      const node = await ctx.client.json<unknown>('GET', `/api/v1/nodes/${encodeURIComponent(name)}`);
      return void ctx.out(JSON.stringify(node, null, 2));
    }
    const { items } = await ctx.client.json<{ items: NodeSummary[] }>('GET', '/api/v1/nodes');
    if (ctx.config.output === 'json') return void ctx.out(JSON.stringify(items, null, 2));
    if (items.length === 0) return void ctx.out('No agent has reported yet.');
    ctx.out(
      table(
        ['NODE', 'STATE', 'CPU', 'MEMORY', 'PODS', 'LAST REPORT', 'AGENT'],
        items.map((n) => [
          n.name,
          n.connected ? (n.stale ? 'stale' : 'connected') : 'disconnected',
          `${n.cpuUsageCores.toFixed(2)}/${n.cpuCores}`,
          `${(n.memoryUsedBytes / GiB).toFixed(1)}/${(n.memoryTotalBytes / GiB).toFixed(1)}Gi`,
          n.pods,
          n.lastReportAgeSeconds === null ? '-' : `${n.lastReportAgeSeconds.toFixed(0)}s ago`,
          n.agentVersion,
        ]),
      ),
    );
  },
};
