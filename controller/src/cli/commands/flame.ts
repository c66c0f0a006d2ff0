import { writeFile } from 'node:fs/promises';

import { parseDuration } from '#common/config.js';
import { ErrorCodes, NemuError } from '#common/errors.js';

import { formatFromFileName } from '../../profiles/render/index.ts';
import type { Command } from '../command.ts';

const USAGE =
  'nemutator flame <namespace>/<pod> [-c CONTAINER] [-t 30s] [--hz 49] -o out.svg|out.pb.gz|out.json|out.folded\n' +
  '       nemutator flame --pid PID [-t 30s] [--hz 49] -o out.svg          (local mode: a process on this machine)\n' +
  '       nemutator flame --diff BASE_ID NEW_ID -o diff.svg                (differential flamegraph of two stored profiles)';

interface Summary {
  id: string;
  samples: number;
  warnings: string[];
  processes: Array<{ pid: number; exe: string; isGo: boolean; goVersion: string; stripped: boolean }>;
}

function usage(message: string): NemuError {
  return new NemuError(ErrorCodes.BAD_REQUEST, `${message}\nusage: ${USAGE}`);
}

export interface FlameArgs {
  target?: string;
  container?: string;
  seconds: number;
  hz: number;
  out: string;
  pid?: number;
  diff?: [string, string];
}

/** `-t 30s` or `-t 30`: whole seconds. */
function parseSeconds(v: string): number {
  const ms = /^\d+$/.test(v) ? Number(v) * 1000 : parseDuration(v);
  if (ms === undefined || ms % 1000 !== 0) throw usage(`-t wants whole seconds such as 30s, got ${v}`);
  return ms / 1000;
}

export function parseFlameArgs(args: string[]): FlameArgs {
  const a: FlameArgs = { seconds: 30, hz: 49, out: '' };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const [flag, inline] = arg.includes('=') && arg.startsWith('-') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = () => inline ?? args[++i] ?? '';
    switch (flag) {
      case '-c':
      case '--container':
        a.container = value();
        break;
      case '-t':
      case '--time':
        a.seconds = parseSeconds(value());
        break;
      case '--hz':
        a.hz = Number(value());
        break;
      case '-o':
      case '--out':
        a.out = value();
        break;
      case '--pid':
        a.pid = Number(value());
        break;
      case '--diff':
        a.diff = [value(), args[++i] ?? ''];
        break;
      default:
        if (arg.startsWith('-') || a.target !== undefined) throw usage(`unknown argument ${arg}`);
        a.target = arg;
    }
  }
  if (!a.out) throw usage('-o FILE is required (the format comes from its extension)');
  if (a.container === '') delete a.container;
  if (a.target === '') delete a.target;
  return a;
}

export const flameCommand: Command = {
  name: 'flame',
  summary: 'CPU flamegraph of a pod (or, in local mode, a process): SVG, pprof, speedscope or folded.',
  usage: USAGE,
  async run(ctx) {
    const a = parseFlameArgs(ctx.args);
    const format = formatFromFileName(a.out);
    if (!format) throw usage(`cannot tell the format of ${a.out}: use .svg, .pb.gz, .json (speedscope) or .folded`);

    let id: string;
    let query = `format=${format}`;
    if (a.diff) {
      if (format !== 'svg') throw usage('a differential flamegraph is an SVG: use -o diff.svg');
      const [base, next] = a.diff;
      if (!base || !next) throw usage('--diff needs two profile ids: BASE NEW');
      id = next;
      query += `&base=${encodeURIComponent(base)}`;
    } else {
      let body: Record<string, unknown>;
      let what: string;
      if (a.pid !== undefined) {
        if (!Number.isInteger(a.pid) || a.pid <= 0) throw usage('--pid wants a process id');
        body = { pid: a.pid, seconds: a.seconds, hz: a.hz };
        what = `pid ${a.pid}`;
      } else {
        const m = /^([^/]+)\/([^/]+)$/.exec(a.target ?? '');
        if (!m) throw usage('name the pod as <namespace>/<pod>');
        body = { namespace: m[1], pod: m[2], seconds: a.seconds, hz: a.hz, ...(a.container ? { container: a.container } : {}) };
        what = `${m[1]}/${m[2]}${a.container ? ` (${a.container})` : ''}`;
      }
      ctx.err(`Sampling ${what} at ${a.hz} Hz for ${a.seconds} s…`);
      const started = Date.now();
      const tick = setInterval(() => {
        const s = Math.round((Date.now() - started) / 1000);
        ctx.err(s <= a.seconds ? `  ${s}/${a.seconds} s` : `  symbolizing… (${s - a.seconds} s)`);
      }, 5000);
      let summary: Summary;
      try {
        summary = await ctx.client.json<Summary>('POST', '/api/v1/profiles', body);
      } finally {
        clearInterval(tick);
      }
      id = summary.id;
      for (const p of summary.processes) {
        ctx.err(
          `  pid ${p.pid} ${p.exe}: ${p.isGo ? `Go ${p.goVersion}${p.stripped ? ', stripped (symbolized from .gopclntab)' : ''}` : 'not a Go program (native symbols)'}`,
        );
      }
      for (const w of summary.warnings) ctx.err(`  warning: ${w}`);
      ctx.err(`Profile ${id}: ${summary.samples} samples.`);
    }
    const res = await ctx.client.request('GET', `/api/v1/profiles/${encodeURIComponent(id)}?${query}`);
    await writeFile(a.out, Buffer.from(await res.arrayBuffer()));
    ctx.out(`${a.out} written (${format}, profile ${id})`);
  },
};
