import type { Command } from '../command.ts';

export const statusCommand: Command = {
  name: 'status',
  summary: 'Is the controller up and ready?',
  usage: 'nemutator status',
  async run(ctx) {
    const health = await ctx.client.json<{ status: string; version: string; mode: string; components: Record<string, string> }>('GET', '/api/v1/status');
    if (ctx.config.output === 'json') return void ctx.out(JSON.stringify(health, null, 2));
    ctx.out(`controller ${health.version} (${health.mode} mode): ${health.status}`);
    for (const [name, state] of Object.entries(health.components)) ctx.out(`  ${name.padEnd(12)} ${state}`);
  },
};
