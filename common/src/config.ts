/**
 * One configuration object per program. Each program declares its keys once (type, default,
 * documentation); values are read, in increasing precedence, from the defaults, a YAML/JSON
 * file (`--config <path>` or NEMUTATOR_CONFIG), environment variables (NEMUTATOR_<KEY>) and
 * flags (--<key>). Everything is validated at start-up and the result is frozen. A bad value
 * stops the program with a message that names the key, where the value came from, the value
 * and the expected form.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

import { ErrorCodes, NemuError } from './errors.ts';

// yaml is loaded only when a file is read (~4 MiB the agent on every node need not carry).
function parseYaml(text: string): unknown {
  return (createRequire(import.meta.url)('yaml') as typeof import('yaml')).parse(text);
}

export interface Spec<T> {
  /** Human description of the accepted form, used in errors and in the reference. */
  readonly form: string;
  readonly doc: string;
  readonly default: T;
  /** Converts a raw value (string from env/flags, any JSON value from a file); throws on bad input. */
  parse(raw: unknown): T;
  /** Renders the default for help and docs. */
  show(value: T): string;
  /** Secret values are never printed (help, errors, dumps). */
  readonly secret?: boolean;
  /** How the default is described when it depends on the machine ("the host name"). */
  readonly defaultText?: string;
}

/** The same spec, with its machine-dependent default described in words for help and docs. */
export function describedAs<T>(spec: Spec<T>, defaultText: string): Spec<T> {
  return { ...spec, defaultText };
}

class FormError extends Error {}

function fail(): never {
  throw new FormError();
}

function asString(raw: unknown): string {
  if (typeof raw === 'string') return raw.trim();
  if (typeof raw === 'number' || typeof raw === 'boolean') return String(raw);
  return fail();
}

export function integer(def: number, doc: string, min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER): Spec<number> {
  const form =
    min === Number.MIN_SAFE_INTEGER && max === Number.MAX_SAFE_INTEGER
      ? 'an integer'
      : max === Number.MAX_SAFE_INTEGER
        ? `an integer ≥ ${min}`
        : `an integer from ${min} to ${max}`;
  return {
    form,
    doc,
    default: def,
    parse(raw) {
      const s = asString(raw);
      if (!/^-?\d+$/.test(s)) fail();
      const n = Number(s);
      if (!Number.isSafeInteger(n) || n < min || n > max) fail();
      return n;
    },
    show: String,
  };
}

export function port(def: number, doc: string): Spec<number> {
  // 0 asks the kernel for a free port: tests and benchmarks use it.
  return { ...integer(def, doc, 0, 65535), form: 'a TCP port, an integer from 0 to 65535 (0 = any free port)' };
}

export function number(def: number, doc: string, min = -Infinity, max = Infinity): Spec<number> {
  return {
    form: `a number${min > -Infinity ? ` ≥ ${min}` : ''}${max < Infinity ? ` and ≤ ${max}` : ''}`,
    doc,
    default: def,
    parse(raw) {
      const s = asString(raw);
      if (!/^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(s)) fail();
      const n = Number(s);
      if (!Number.isFinite(n) || n < min || n > max) fail();
      return n;
    },
    show: String,
  };
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses "250ms", "10s", "5m", "1h30m", "7d" into milliseconds. */
export function parseDuration(text: string): number | undefined {
  const s = text.trim();
  if (!/^(\d+(\.\d+)?(ms|s|m|h|d))+$/.test(s)) return undefined;
  let total = 0;
  for (const m of s.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)) total += Number(m[1]) * DURATION_UNITS[m[2] as string]!;
  return Math.round(total);
}

export function formatDuration(ms: number): string {
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

/** A duration, held in milliseconds. */
export function duration(def: string, doc: string, minMs = 0): Spec<number> {
  const d = parseDuration(def);
  if (d === undefined) throw new Error(`bad default duration ${def}`);
  return {
    form: `a duration such as 500ms, 10s, 5m, 1h${minMs > 0 ? ` (at least ${formatDuration(minMs)})` : ''}`,
    doc,
    default: d,
    parse(raw) {
      const v = parseDuration(asString(raw));
      if (v === undefined || v < minMs) fail();
      return v;
    },
    show: formatDuration,
  };
}

export function string(def: string, doc: string, opts: { secret?: boolean; pattern?: RegExp; form?: string } = {}): Spec<string> {
  return {
    form: opts.form ?? 'a string',
    doc,
    default: def,
    secret: opts.secret ?? false,
    parse(raw) {
      const s = asString(raw);
      if (opts.pattern && !opts.pattern.test(s)) fail();
      return s;
    },
    show: (v) => (opts.secret && v ? '<redacted>' : JSON.stringify(v)),
  };
}

export function url(def: string, doc: string, protocols: string[] = ['http:', 'https:']): Spec<string> {
  return {
    form: `a URL (${protocols.map((p) => p.replace(':', '')).join(', ')}), or empty to disable`,
    doc,
    default: def,
    parse(raw) {
      const s = asString(raw);
      if (s === '') return s;
      let u: URL;
      try {
        u = new URL(s);
      } catch {
        return fail();
      }
      if (!protocols.includes(u.protocol)) fail();
      return s;
    },
    show: (v) => JSON.stringify(v),
  };
}

export function boolean(def: boolean, doc: string): Spec<boolean> {
  return {
    form: 'true or false',
    doc,
    default: def,
    parse(raw) {
      if (typeof raw === 'boolean') return raw;
      const s = asString(raw).toLowerCase();
      if (['true', '1', 'yes', 'on'].includes(s)) return true;
      if (['false', '0', 'no', 'off'].includes(s)) return false;
      return fail();
    },
    show: String,
  };
}

export function oneOf<const V extends string>(values: readonly V[], def: V, doc: string): Spec<V> {
  return {
    form: `one of ${values.join(', ')}`,
    doc,
    default: def,
    parse(raw) {
      const s = asString(raw);
      if (!(values as readonly string[]).includes(s)) fail();
      return s as V;
    },
    show: String,
  };
}

export function list(def: string[], doc: string): Spec<string[]> {
  return {
    form: 'a comma-separated list',
    doc,
    default: def,
    parse(raw) {
      if (Array.isArray(raw)) return raw.map((x) => asString(x)).filter((x) => x !== '');
      return asString(raw)
        .split(',')
        .map((x) => x.trim())
        .filter((x) => x !== '');
    },
    show: (v) => JSON.stringify(v.join(',')),
  };
}

export type Schema = Record<string, Spec<unknown>>;
export type ConfigOf<S extends Schema> = { readonly [K in keyof S]: S[K] extends Spec<infer T> ? T : never };

export const ENV_PREFIX = 'NEMUTATOR_';

export function envName(key: string): string {
  return ENV_PREFIX + key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
}

export function flagName(key: string): string {
  return '--' + key.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase();
}

export interface LoadOptions {
  /** Program name, used in errors and help. */
  program: string;
  argv?: readonly string[];
  env?: Readonly<Record<string, string | undefined>>;
  /** Defaults that differ for this entry point (local mode binds to loopback, say). */
  defaults?: Readonly<Record<string, unknown>>;
}

export interface Loaded<S extends Schema> {
  config: ConfigOf<S>;
  /** Positional arguments left after flags (the CLI uses them). */
  positionals: string[];
  /** True when --help was given: the caller prints `help()` and exits 0. */
  help: boolean;
}

function configError(program: string, key: string, source: string, raw: unknown, spec: Spec<unknown>): NemuError {
  const shown = spec.secret ? '<redacted>' : JSON.stringify(raw);
  return new NemuError(
    ErrorCodes.CONFIG,
    `${program}: bad value for ${key} (from ${source}): ${shown}; expected ${spec.form}. ` +
      `Set it with ${flagName(key)} or ${envName(key)}, or see docs/configuration.md.`,
    { status: 400 },
  );
}

/** Reads and validates a program's configuration. Throws NemuError (NEMU_ERR_CONFIG*) on the first bad value. */
export function loadConfig<S extends Schema>(schema: S, opts: LoadOptions): Loaded<S> {
  const argv = opts.argv ?? process.argv.slice(2);
  const env = opts.env ?? process.env;
  const byFlag = new Map(Object.keys(schema).map((k) => [flagName(k), k]));
  const values: Record<string, unknown> = {};
  const sources: Record<string, string> = {};
  const positionals: string[] = [];
  let help = false;
  let configPath = env[`${ENV_PREFIX}CONFIG`];

  // Flags first collected, applied last (highest precedence).
  const flagValues: Array<[string, string]> = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (arg === '--help' || arg === '-h') {
      help = true;
      continue;
    }
    if (!arg.startsWith('--')) {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = eq >= 0 ? arg.slice(0, eq) : arg;
    let value: string | undefined = eq >= 0 ? arg.slice(eq + 1) : undefined;
    if (name === '--config') {
      configPath = value ?? argv[++i];
      if (configPath === undefined) throw new NemuError(ErrorCodes.CONFIG, `${opts.program}: --config needs a file path`);
      continue;
    }
    const key = byFlag.get(name);
    if (key === undefined) {
      throw new NemuError(ErrorCodes.CONFIG, `${opts.program}: unknown flag ${name}; run with --help for the list of flags`);
    }
    if (value === undefined) {
      const next = argv[i + 1];
      // A boolean flag may stand alone: --dry-run.
      if (schema[key]!.form === 'true or false' && (next === undefined || next.startsWith('--') || !/^(true|false|1|0|yes|no|on|off)$/i.test(next))) {
        value = 'true';
      } else if (next === undefined) {
        throw new NemuError(ErrorCodes.CONFIG, `${opts.program}: ${name} needs a value: ${schema[key]!.form}`);
      } else {
        value = next;
        i++;
      }
    }
    flagValues.push([key, value]);
  }

  if (configPath) {
    let text: string;
    try {
      text = readFileSync(configPath, 'utf8');
    } catch (e) {
      throw new NemuError(ErrorCodes.CONFIG_FILE, `${opts.program}: cannot read config file ${configPath}: ${(e as Error).message}`);
    }
    let doc: unknown;
    try {
      doc = parseYaml(text);
    } catch (e) {
      throw new NemuError(ErrorCodes.CONFIG_FILE, `${opts.program}: config file ${configPath} is not valid YAML or JSON: ${(e as Error).message}`);
    }
    if (doc !== null && doc !== undefined) {
      if (typeof doc !== 'object' || Array.isArray(doc)) {
        throw new NemuError(ErrorCodes.CONFIG_FILE, `${opts.program}: config file ${configPath} must hold a mapping of keys to values`);
      }
      for (const [key, raw] of Object.entries(doc as Record<string, unknown>)) {
        if (!(key in schema)) {
          throw new NemuError(ErrorCodes.CONFIG_FILE, `${opts.program}: unknown key ${key} in config file ${configPath}; see docs/configuration.md`);
        }
        values[key] = raw;
        sources[key] = `config file ${configPath}`;
      }
    }
  }
  for (const key of Object.keys(schema)) {
    const v = env[envName(key)];
    if (v !== undefined) {
      values[key] = v;
      sources[key] = `environment variable ${envName(key)}`;
    }
  }
  for (const [key, v] of flagValues) {
    values[key] = v;
    sources[key] = `flag ${flagName(key)}`;
  }

  const out: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(schema)) {
    if (!(key in values)) {
      out[key] = opts.defaults && key in opts.defaults ? opts.defaults[key] : spec.default;
      continue;
    }
    try {
      out[key] = spec.parse(values[key]);
    } catch (e) {
      if (e instanceof FormError) throw configError(opts.program, key, sources[key]!, values[key], spec);
      throw e;
    }
  }
  return { config: Object.freeze(out) as ConfigOf<S>, positionals, help };
}

/** Help text generated from the schema. */
export function help(schema: Schema, program: string, usage = ''): string {
  const lines = [
    `Usage: ${program}${usage ? ' ' + usage : ' [flags]'}`,
    '',
    'Flags (each also read from NEMUTATOR_<KEY>, or from a YAML file given by --config):',
  ];
  for (const [key, spec] of Object.entries(schema)) {
    lines.push(`  ${flagName(key)} <${spec.form}>`);
    lines.push(`      ${spec.doc} (default ${spec.defaultText ?? spec.show(spec.default)}; env ${envName(key)})`);
  }
  return lines.join('\n');
}

/** Markdown table of a schema, for docs/configuration.md. */
export function referenceTable(schema: Schema): string {
  const rows = ['| key | flag | environment | default | form | meaning |', '|---|---|---|---|---|---|'];
  for (const [key, spec] of Object.entries(schema)) {
    const esc = (s: string) => s.replace(/\|/g, '\\|');
    rows.push(
      `| \`${key}\` | \`${flagName(key)}\` | \`${envName(key)}\` | ${spec.defaultText ? esc(spec.defaultText) : '`' + esc(spec.show(spec.default)) + '`'} | ${esc(spec.form)} | ${esc(spec.doc)} |`,
    );
  }
  return rows.join('\n');
}
