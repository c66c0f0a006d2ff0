/** Kubernetes resource quantities (`500m`, `1.5`, `512Mi`, `1G`, `1e3`): parsing and formatting. */

const SUFFIX: Record<string, number> = {
  '': 1,
  m: 1e-3,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

// Quantities repeat across pods (`1`, `500m`, `1Gi`): each distinct string is parsed once.
const parsed = new Map<string, number | undefined>();

/** The quantity in base units (cores, bytes), or undefined when it is not a quantity. */
export function parseQuantity(q: unknown): number | undefined {
  if (typeof q === 'number') return Number.isFinite(q) ? q : undefined;
  if (typeof q !== 'string') return undefined;
  if (parsed.has(q)) return parsed.get(q);
  if (parsed.size >= 4096) parsed.clear();
  const v = parse(q);
  parsed.set(q, v);
  return v;
}

function parse(q: string): number | undefined {
  const m = /^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei))?$/.exec(q.trim());
  if (!m) return undefined;
  const base = Number(m[1]);
  if (m[2]) return Number(m[1] + m[2]);
  return base * SUFFIX[m[3] ?? '']!;
}

/** CPU as millicores, rounded up (never below 1m). */
export function formatCpu(cores: number): string {
  const milli = Math.max(1, Math.ceil(cores * 1000 - 1e-9));
  return milli % 1000 === 0 ? String(milli / 1000) : `${milli}m`;
}

/** Bytes, rounded up, with the largest binary suffix that divides exactly. */
export function formatBytes(bytes: number): string {
  const b = Math.max(1, Math.ceil(bytes - 1e-6));
  for (const [s, size] of [
    ['Gi', 2 ** 30],
    ['Mi', 2 ** 20],
    ['Ki', 2 ** 10],
  ] as const)
    if (b % size === 0) return `${b / size}${s}`;
  return String(b);
}

export function formatQuantity(resource: string, value: number): string {
  return resource === 'cpu' ? formatCpu(value) : formatBytes(value);
}
