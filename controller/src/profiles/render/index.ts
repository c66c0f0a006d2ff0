/** One profile, any format: the REST API and the CLI pick by name or file extension. */
import { type ProfileData, rootFirstStacks, totalSamples } from '../model.ts';
import { renderFlamegraph } from './flamegraph.ts';
import { renderFolded } from './folded.ts';
import { renderPprof } from './pprof.ts';
import { renderSpeedscope } from './speedscope.ts';

export const FORMATS = ['pprof', 'speedscope', 'folded', 'svg'] as const;
export type ProfileFormat = (typeof FORMATS)[number];

export function isFormat(v: string): v is ProfileFormat {
  return (FORMATS as readonly string[]).includes(v);
}

/** Output format from a file name: .svg, .pb.gz (or .pprof), .json, .folded (or .txt). */
export function formatFromFileName(name: string): ProfileFormat | undefined {
  if (name.endsWith('.svg')) return 'svg';
  if (name.endsWith('.pb.gz') || name.endsWith('.pprof') || name.endsWith('.pb')) return 'pprof';
  if (name.endsWith('.json')) return 'speedscope';
  if (name.endsWith('.folded') || name.endsWith('.txt')) return 'folded';
  return undefined;
}

export interface RenderOptions {
  title: string;
  subtitle?: string;
  /** Differential flamegraph against this profile (svg only). */
  base?: ProfileData;
}

export function renderProfile(data: ProfileData, format: ProfileFormat, opts: RenderOptions): { content: Buffer; contentType: string } {
  switch (format) {
    case 'pprof':
      return { content: renderPprof(data), contentType: 'application/octet-stream' };
    case 'speedscope':
      return { content: Buffer.from(renderSpeedscope(data, opts.title)), contentType: 'application/json' };
    case 'folded':
      return { content: Buffer.from(renderFolded(data)), contentType: 'text/plain; charset=utf-8' };
    case 'svg': {
      const subtitle =
        opts.subtitle ??
        `${totalSamples(data)} samples at ${data.hz} Hz over ${(data.durationMs / 1000).toFixed(1)} s` +
          (opts.base ? `, against a base of ${totalSamples(opts.base)} samples (red: grew, blue: shrank)` : '');
      return {
        content: Buffer.from(
          renderFlamegraph(rootFirstStacks(data), { title: opts.title, subtitle, ...(opts.base ? { base: rootFirstStacks(opts.base) } : {}) }),
        ),
        contentType: 'image/svg+xml',
      };
    }
  }
}
