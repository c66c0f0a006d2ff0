// Local mode (controller + in-process agent): `nemutator flame --pid` through the REST API,
// the fleet link and the real agent; every output format from one stored capture; a
// differential flamegraph between two captures; retention.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { LocalMode } from '#local/main.js';

import { startTestLocal, type TestLocal } from '../harness/controller.ts';
import { buildGo } from '../harness/golang.ts';
import { requireTool } from '../harness/tools.ts';
import { HOTLOOP, startHotloop } from './hotloop.ts';

let t: TestLocal;
let local: LocalMode;
let stateDir: string;
const cli = (...args: string[]) => t.cli(...args);

beforeAll(async () => {
  t = await startTestLocal({ profileRetention: 3 });
  local = t.local;
  stateDir = t.stateDir;
});
afterAll(() => t?.stop());

describe('nemutator flame in local mode', () => {
  it('--pid writes an SVG flamegraph with the hot function of a stripped Go build; the same profile serves every format', { timeout: 120_000 }, async () => {
    requireTool('bpftrace', 'bpftrace');
    const hot = await startHotloop(await buildGo(HOTLOOP, { stripped: true }));
    try {
      const svgFile = join(stateDir, 'out.svg');
      const r = await cli('flame', '--pid', String(hot.pid), '-t', '2s', '--hz', '49', '-o', svgFile);
      expect(r.err).toContain(`Sampling pid ${hot.pid} at 49 Hz for 2 s`);
      expect(r.err).toMatch(/Go go1\.\d+.*stripped \(symbolized from \.gopclntab\)/);
      expect(r.code).toBe(0);
      const id = /profile ([0-9a-z]{9}-[0-9a-f]{8})/.exec(r.out)![1]!;
      const svg = readFileSync(svgFile, 'utf8');
      expect(svg).toMatch(/^<\?xml/);
      expect(svg).toContain('data-name="main.hotFunction"');
      expect(svg).toContain('data-name="main.inlinedAdd"');

      const token = readFileSync(join(stateDir, 'admin-token'), 'utf8').trim();
      const get = (q: string) => fetch(`${local.apiUrl}/profiles/${id}${q}`, { headers: { authorization: `Bearer ${token}` } });
      const folded = await (await get('?format=folded')).text();
      expect(folded).toMatch(/;main\.hotFunction;main\.inlinedAdd \d+\n/);
      const pprof = Buffer.from(await (await get('?format=pprof')).arrayBuffer());
      expect(gunzipSync(pprof).includes(Buffer.from('main.hotFunction'))).toBe(true);
      const speedscope = (await (await get('?format=speedscope')).json()) as { shared: { frames: Array<{ name: string }> } };
      expect(speedscope.shared.frames.map((f) => f.name)).toContain('main.inlinedAdd');
      const summary = (await (await get('')).json()) as {
        requestedBy: string;
        target: { pid: number };
        processes: Array<{ isGo: boolean; stripped: boolean }>;
      };
      expect(summary.target.pid).toBe(hot.pid);
      expect(summary.processes[0]).toMatchObject({ isGo: true, stripped: true });
      expect((await get('?format=png')).status).toBe(400);

      // The file extension picks the format.
      const pb = join(stateDir, 'out.pb.gz');
      expect((await cli('flame', '--pid', String(hot.pid), '-t', '1s', '-o', pb)).code).toBe(0);
      expect(readFileSync(pb).subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b]));
      const second = /profile ([0-9a-z]{9}-[0-9a-f]{8})/.exec(
        (await cli('flame', '--pid', String(hot.pid), '-t', '1s', '-o', join(stateDir, 'x.folded'))).out,
      )![1]!;

      // Differential flamegraph between two stored profiles.
      const diffFile = join(stateDir, 'diff.svg');
      expect((await cli('flame', '--diff', id, second, '-o', diffFile)).code).toBe(0);
      expect(readFileSync(diffFile, 'utf8')).toMatch(/Differential flamegraph: .* against /);

      // Retention 3: a fourth capture prunes the first.
      expect((await cli('flame', '--pid', String(hot.pid), '-t', '1s', '-o', join(stateDir, 'y.folded'))).code).toBe(0);
      expect((await get('?format=folded')).status).toBe(404);
    } finally {
      await hot.stop();
    }
  });

  it('refuses limits past the caps and a pid that does not exist, with clear messages', async () => {
    const tooLong = await cli('flame', '--pid', '1', '-t', '61s', '-o', join(stateDir, 'z.svg'));
    expect(tooLong.code).not.toBe(0);
    expect(tooLong.err).toMatch(/seconds must be an integer from 1 to 60/);
    const noProc = await cli('flame', '--pid', '999999999', '-t', '1s', '-o', join(stateDir, 'z.svg'));
    expect(noProc.err).toMatch(/NEMU_ERR_PROFILER_TARGET.*no process 999999999/);
    const noExt = await cli('flame', '--pid', '1', '-o', join(stateDir, 'z.png'));
    expect(noExt.err).toMatch(/cannot tell the format/);
  });
});
