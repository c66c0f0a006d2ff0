// A Go program with a known hot function, built normally and stripped, runs in a pod-shaped
// cgroup; the real capture path (cgroup id filter, bpftrace, our symbolization) must put
// main.hotFunction on top in every output format, with the inlined main.inlinedAdd as its own
// frame, and `go tool pprof -top` must read the pprof file.
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { capture } from '#agent/profiler/capture.js';
import { toWire } from '#agent/profiler/handler.js';
import { fromWire, type ProfileData } from '#controller/profiles/model.js';
import { parseFolded, renderFolded } from '#controller/profiles/render/folded.js';
import { renderProfile } from '#controller/profiles/render/index.js';
import { renderPprof } from '#controller/profiles/render/pprof.js';
import { renderSpeedscope } from '#controller/profiles/render/speedscope.js';

import { buildGo } from '../harness/golang.ts';
import { requireTool, runTool } from '../harness/tools.ts';
import { HOTLOOP, inlinedAddLine, type RunningHotloop, startHotloop } from './hotloop.ts';

const running: RunningHotloop[] = [];
afterAll(async () => {
  for (const r of running) await r.stop();
});

/** Leaf-most non-kernel frame names of the heaviest samples: what "on top" means in a flamegraph. */
function topUserFunction(data: ProfileData): string {
  const byLeaf = new Map<string, number>();
  for (const s of data.samples) {
    const physical = s.frames.map((i) => data.frames[i]!).filter((f) => f.kind !== 'kernel' && !f.inlined);
    const leaf = physical[0]?.function ?? '?';
    byLeaf.set(leaf, (byLeaf.get(leaf) ?? 0) + s.count);
  }
  return [...byLeaf].sort((a, b) => b[1] - a[1])[0]![0];
}

describe.each([
  { build: 'normal', stripped: false },
  { build: 'stripped (-s -w)', stripped: true },
])('profiling a Go program in a pod cgroup, $build', ({ stripped }) => {
  it('shows main.hotFunction on top, main.inlinedAdd as its own inlined frame, in every format', { timeout: 120_000 }, async () => {
    requireTool('bpftrace', 'bpftrace');
    const go = requireTool('go', 'golang-go');
    const binary = await buildGo(HOTLOOP, { stripped });
    const r = await startHotloop(binary);
    running.push(r);

    const result = await capture({ target: { podUid: r.cg.podUid }, seconds: 2, hz: 99 }, { bpftracePath: 'bpftrace', cgroupRoot: r.cg.root });
    // Through the wire shape, as the controller gets it.
    const data = fromWire(toWire(result));

    const proc = data.processes.find((p) => p.pid === r.pid);
    expect(proc).toMatchObject({ isGo: true, stripped, modulePath: 'nemutator.io/fixtures/hotloop' });
    expect(proc!.goVersion).toMatch(/^go1\./);
    expect(proc!.container).toBe(r.cg.containerId.slice(0, 12));
    const total = data.samples.reduce((a, s) => a + s.count, 0);
    // At most 2 s × 99 Hz for a thread that had a CPU to itself; a shared CI machine gives less.
    expect(total).toBeGreaterThan(10);
    expect(total).toBeLessThanOrEqual(2 * 99 * 1.2);
    expect(data.samples.every((s) => s.pid === r.pid)).toBe(true); // the kernel filter kept other cgroups out

    expect(topUserFunction(data)).toBe('main.hotFunction');
    const inlined = data.frames.find((f) => f.function === 'main.inlinedAdd');
    expect(inlined).toMatchObject({ inlined: true, kind: 'go' });
    expect(inlined!.file).toMatch(/hotloop\/main\.go$/);
    expect(inlined!.line).toBe(inlinedAddLine());

    // folded: the heaviest stacks end in hotFunction or its inlined callee.
    const folded = parseFolded(renderFolded(data));
    const heaviest = [...folded].sort((a, b) => b[1] - a[1])[0]![0];
    expect(heaviest).toMatch(/;main\.hotFunction(;main\.inlinedAdd)?$/);

    // speedscope: the heaviest sample's last frame is hotFunction/inlinedAdd.
    const ss = JSON.parse(renderSpeedscope(data, 'test')) as {
      shared: { frames: Array<{ name: string }> };
      profiles: Array<{ samples: number[][]; weights: number[] }>;
    };
    const p0 = ss.profiles[0]!;
    const maxAt = p0.weights.indexOf(Math.max(...p0.weights));
    const leafName = ss.shared.frames[p0.samples[maxAt]!.at(-1)!]!.name;
    expect(['main.hotFunction', 'main.inlinedAdd']).toContain(leafName);

    // svg: the widest frame under the process is the hot function's path.
    const svg = renderProfile(data, 'svg', { title: 'hotloop' }).content.toString();
    expect(svg).toContain('main.hotFunction');
    expect(svg).toContain('main.inlinedAdd');

    // pprof: go tool pprof reads it; hotFunction leads -top by cumulative... and flat with inlining.
    const dir = await mkdtemp(join(tmpdir(), 'nemu-pprof-'));
    const file = join(dir, 'cpu.pb.gz');
    await writeFile(file, renderPprof(data));
    const { stdout } = await runTool(go, ['tool', 'pprof', '-top', '-nodecount=5', file], { env: { ...process.env, HOME: dir, PPROF_TMPDIR: dir } });
    const rows = stdout.split('\n').filter((l) => /^\s+\d/.test(l));
    expect(rows[0]).toMatch(/main\.(hotFunction|inlinedAdd)/);
    expect(stdout).toContain('main.inlinedAdd');
    expect(stdout).toContain('main.hotFunction');
  });
});
