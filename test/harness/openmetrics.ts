// OpenMetrics text for `promtool tsdb create-blocks-from openmetrics`: generated history
// (days of samples) that a real Prometheus then serves.

export interface SeriesSpec {
  /** The name queries use, e.g. `container_cpu_usage_seconds_total`. */
  name: string;
  labels: Record<string, string>;
  /** Default: gauge. */
  type?: 'counter' | 'gauge';
  /** Unix seconds of the first sample. */
  start: number;
  /** Unix seconds; the last sample is at the last step not after `end`. */
  end: number;
  stepSeconds: number;
  value(t: number): number;
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/**
 * One `# TYPE` line per metric family, each family's samples together, each series' samples
 * together and in time order, ending with `# EOF` — the shape OpenMetrics requires and
 * promtool checks.
 */
export function openMetrics(series: SeriesSpec[]): string {
  const families = new Map<string, { type: 'counter' | 'gauge'; series: SeriesSpec[] }>();
  const seen = new Set<string>();
  for (const spec of series) {
    validate(spec);
    const type = spec.type ?? 'gauge';
    const key = `${spec.name}${labelSet(spec.labels)}`;
    if (seen.has(key)) throw new Error(`openMetrics: series ${key} is given twice`);
    seen.add(key);
    // In OpenMetrics a counter family `x` has samples named `x_total`.
    const family = type === 'counter' ? spec.name.replace(/_total$/, '') : spec.name;
    const entry = families.get(family);
    if (entry === undefined) {
      families.set(family, { type, series: [spec] });
    } else if (entry.type !== type) {
      throw new Error(`openMetrics: metric family ${family} is both ${entry.type} and ${type}`);
    } else {
      entry.series.push(spec);
    }
  }

  const lines: string[] = [];
  for (const [family, { type, series: members }] of families) {
    lines.push(`# TYPE ${family} ${type}`);
    for (const spec of members) {
      const prefix = `${spec.name}${labelSet(spec.labels)} `;
      const count = Math.floor((spec.end - spec.start) / spec.stepSeconds + 1e-9) + 1;
      for (let i = 0; i < count; i++) {
        // Multiply rather than accumulate, so long series do not drift off the step grid.
        const t = spec.start + i * spec.stepSeconds;
        lines.push(`${prefix}${formatValue(spec.value(t))} ${t}`);
      }
    }
  }
  lines.push('# EOF');
  return `${lines.join('\n')}\n`;
}

function validate(spec: SeriesSpec): void {
  if (!METRIC_NAME.test(spec.name)) {
    throw new Error(`openMetrics: ${JSON.stringify(spec.name)} is not a metric name`);
  }
  for (const name of Object.keys(spec.labels)) {
    if (!LABEL_NAME.test(name) || name.startsWith('__')) {
      throw new Error(`openMetrics: ${JSON.stringify(name)} is not a label name (series ${spec.name})`);
    }
  }
  if (!(spec.stepSeconds > 0) || !Number.isFinite(spec.start) || !(spec.end >= spec.start)) {
    throw new Error(
      `openMetrics: series ${spec.name} needs start <= end and stepSeconds > 0 (got start=${spec.start} end=${spec.end} stepSeconds=${spec.stepSeconds})`,
    );
  }
}

function labelSet(labels: Record<string, string>): string {
  const names = Object.keys(labels).sort();
  if (names.length === 0) return '';
  return `{${names.map((n) => `${n}="${escapeLabelValue(labels[n] ?? '')}"`).join(',')}}`;
}

function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  // JavaScript's shortest round-trip form; Go's ParseFloat reads it back to the same float64.
  return String(v);
}
