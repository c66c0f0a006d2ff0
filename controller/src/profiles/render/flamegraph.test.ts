import { describe, expect, it } from 'vitest';

import type { ProfileData } from '../model.ts';
import { buildTree, renderFlamegraph } from './flamegraph.ts';
import { parseFolded, renderFolded } from './folded.ts';

const data: ProfileData = {
  frames: [
    { function: 'main.b', file: 'm.go', line: 3, inlined: false, kind: 'go', address: 1, mapping: '/x' },
    { function: 'main.a', file: 'm.go', line: 9, inlined: false, kind: 'go', address: 2, mapping: '/x' },
    { function: 'vfs_read', file: '', line: 0, inlined: false, kind: 'kernel', address: 3, mapping: '[kernel.kallsyms]' },
  ],
  samples: [
    { frames: [0, 1], count: 30, pid: 7 },
    { frames: [2, 1], count: 10, pid: 7 },
    { frames: [1], count: 5, pid: 7 },
  ],
  processes: [{ pid: 7, exe: '/bin/app', isGo: true, goVersion: 'go1.19', modulePath: 'm', stripped: false, container: '' }],
  hz: 49,
  startedUnixMs: 0,
  durationMs: 1000,
  warnings: [],
};

describe('folded and flamegraph', () => {
  it('folds root first with the process as root and kernel frames marked _[k]', () => {
    expect(renderFolded(data)).toBe('app (7);main.a 5\napp (7);main.a;main.b 30\napp (7);main.a;vfs_read_[k] 10\n');
    expect(parseFolded(renderFolded(data)).get('app (7);main.a;main.b')).toBe(30);
  });

  it('gives frames widths proportional to samples, children in alphabetical order', () => {
    const svg = renderFlamegraph(
      [
        { names: ['p', 'zeta'], count: 25 },
        { names: ['p', 'alpha'], count: 75 },
      ],
      { title: 't', width: 220 },
    );
    const rects = [...svg.matchAll(/<rect x="([\d.]+)" y="\d+" width="([\d.]+)"[^>]*data-name="([^"]+)"/g)].map((m) => ({ x: +m[1]!, w: +m[2]!, name: m[3]! }));
    const alpha = rects.find((r) => r.name === 'alpha')!;
    const zeta = rects.find((r) => r.name === 'zeta')!;
    expect(alpha.w / zeta.w).toBeCloseTo(3, 5);
    expect(alpha.x).toBeLessThan(zeta.x);
    expect(rects.find((r) => r.name === 'all')!.w).toBeCloseTo(200, 5);
    expect(svg).toContain('function zoom(');
    expect(svg).toContain('function search(');
  });

  it('stays well-formed XML when a frame name holds control characters or markup', () => {
    // A process may name itself anything but NUL (prctl PR_SET_NAME), and its comm is the root
    // frame of a process without an executable: one control character used to make the whole
    // SVG unreadable to a browser.
    const svg = renderFlamegraph([{ names: ['[bad\u0001\u001bname]', 'f<&>"', 'half\uD800'], count: 10 }], { title: 'c\u0007' });
    // eslint-disable-next-line no-control-regex -- looking for the characters XML 1.0 forbids
    expect(svg).not.toMatch(/[\u0000-\u0008\u000B\u000C\u000E-\u001F]|[\uD800-\uDFFF]/);
    expect(svg).toContain('data-name="[bad\uFFFD\uFFFDname]"');
    expect(svg).toContain('data-name="f&lt;&amp;&gt;&quot;"');
    expect(svg).toContain('data-name="half\uFFFD"');
  });

  it('differential: red where a path grew (in shares), blue where it shrank', () => {
    const tree = buildTree(
      [
        { names: ['p', 'a'], count: 80 },
        { names: ['p', 'b'], count: 20 },
      ],
      [
        { names: ['p', 'a'], count: 50 },
        { names: ['p', 'b'], count: 50 },
      ],
    );
    expect(tree.children.get('p')!.children.get('a')!.baseTotal).toBe(50);
    const svg = renderFlamegraph(
      [
        { names: ['p', 'a'], count: 80 },
        { names: ['p', 'b'], count: 20 },
      ],
      {
        title: 'd',
        base: [
          { names: ['p', 'a'], count: 50 },
          { names: ['p', 'b'], count: 50 },
        ],
      },
    );
    const fill = (name: string) => new RegExp(`fill="(rgb\\([^)]*\\))"[^>]*data-name="${name}"`).exec(svg)![1];
    expect(fill('a')).toBe('rgb(255,40,40)');
    expect(fill('b')).toBe('rgb(40,40,255)');
    expect(svg).toContain('change +30.00 points');
  });
});
