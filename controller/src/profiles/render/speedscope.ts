/**
 * speedscope's file format (https://www.speedscope.app/file-format-schema.json): one "sampled"
 * profile per process, frames shared, samples root first with their counts as weights.
 */
import { frameName, type ProfileData } from '../model.ts';

interface SpeedscopeFrame {
  name: string;
  file?: string;
  line?: number;
}

export function renderSpeedscope(data: ProfileData, name: string): string {
  const frames: SpeedscopeFrame[] = data.frames.map((f) => ({
    name: frameName(f),
    ...(f.file ? { file: f.file } : {}),
    ...(f.line ? { line: f.line } : {}),
  }));
  const byPid = new Map<number, { samples: number[][]; weights: number[] }>();
  for (const s of data.samples) {
    let p = byPid.get(s.pid);
    if (!p) byPid.set(s.pid, (p = { samples: [], weights: [] }));
    p.samples.push([...s.frames].reverse());
    p.weights.push(s.count);
  }
  const profiles = [...byPid].map(([pid, p]) => {
    const exe = data.processes.find((x) => x.pid === pid)?.exe ?? '';
    const total = p.weights.reduce((a, b) => a + b, 0);
    return {
      type: 'sampled',
      name: `${exe.slice(exe.lastIndexOf('/') + 1) || 'process'} (pid ${pid})`,
      unit: 'none',
      startValue: 0,
      endValue: total,
      samples: p.samples,
      weights: p.weights,
    };
  });
  return JSON.stringify({
    $schema: 'https://www.speedscope.app/file-format-schema.json',
    shared: { frames },
    profiles,
    name,
    activeProfileIndex: 0,
    exporter: 'nemutator',
  });
}
