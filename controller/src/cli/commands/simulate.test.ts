import { describe, expect, it } from 'vitest';

import { runCli } from '../main.ts';

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCli(argv, { out: (s) => (out += s + '\n'), err: (s) => (err += s + '\n') });
  return { code, out, err };
}

describe('nemutator simulate', () => {
  it('prints the three scorers side by side with the seed, without a controller', async () => {
    const r = await cli('--server', 'http://127.0.0.1:9', 'simulate', '--nodes', '20', '--pods', '200', '--seed', '3');
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^seed 3: 20 nodes at 00:00, \d+ pods over the day/);
    expect(r.out).toContain('NODE-HOURS');
    for (const s of ['default', 'trimaran', 'nemutator']) expect(r.out).toMatch(new RegExp(`^${s}\\s+\\d+\\.\\d`, 'm'));
  });

  it('--scorer picks one; --json gives the results as data', async () => {
    const r = await cli('simulate', '--nodes', '20', '--pods', '200', '--scorer', 'trimaran', '--json');
    const results = JSON.parse(r.out) as Array<{ scorer: string; nodeHours: number; seed: number }>;
    expect(results.map((x) => x.scorer)).toEqual(['trimaran']);
    expect(results[0]!.seed).toBe(1);
    expect(results[0]!.nodeHours).toBeGreaterThan(0);
  });

  it('--weights replays Nemutator with other weights: packing harder gives back more nodes', async () => {
    const run = async (...extra: string[]) =>
      (
        JSON.parse((await cli('simulate', '--nodes', '20', '--pods', '200', '--scorer', 'nemutator', '--json', ...extra)).out) as Array<{
          nodesRemoved: number;
          nodeHours: number;
        }>
      )[0]!;
    const defaults = await run();
    const harder = await run('--weights', '{"offPeakPack":0.6}');
    expect(harder.nodeHours).toBeLessThan(defaults.nodeHours);
  });

  it('rejects bad flags with NEMU_ERR_BAD_REQUEST and exit code 1', async () => {
    for (const args of [
      ['--scorer', 'magic'],
      ['--nodes', '0'],
      ['--pods', 'many'],
      ['--frobnicate'],
      ['--weights', '{"load":"x"}'],
      ['--weights', '{"speed":1}'],
      ['--weights', 'nope'],
    ]) {
      const r = await cli('simulate', ...args);
      expect(r.code).toBe(1);
      expect(r.err).toContain('NEMU_ERR_BAD_REQUEST');
    }
  });
});
