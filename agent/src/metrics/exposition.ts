/**
 * The agent's own `/metrics` page in the Prometheus text exposition format (0.0.4). Container
 * metrics keep cAdvisor's names and labels so existing dashboards and recording rules work
 * unchanged; node metrics are `nemutator_node_*` gauges.
 */
import type { IContainerUsage, INodeMetrics, INodeReport, IPodUsage, IPressure } from '#proto/codec.js';

type Labels = Record<string, string>;
type Num = number | { toNumber(): number } | null | undefined;

interface Family {
  name: string;
  help: string;
  type: 'counter' | 'gauge';
  samples: Array<{ labels: Labels; value: number }>;
}

const NEEDS_ESCAPE = /[\\"\n]/;

/** Label values escape backslash, double quote and newline; nothing else. */
export function escapeLabelValue(value: string): string {
  // Nearly every value needs nothing: return it as it is instead of three copies.
  if (!NEEDS_ESCAPE.test(value)) return value;
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

function num(value: Num): number | undefined {
  if (value === null || value === undefined) return undefined;
  return typeof value === 'number' ? value : value.toNumber();
}

function renderLabels(labels: Labels): string {
  const pairs = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabelValue(v)}"`);
  return pairs.length === 0 ? '' : `{${pairs.join(',')}}`;
}

function render(families: Family[]): string {
  let out = '';
  for (const f of families) {
    if (f.samples.length === 0) continue;
    out += `# HELP ${f.name} ${escapeHelp(f.help)}\n# TYPE ${f.name} ${f.type}\n`;
    for (const s of f.samples) {
      out += `${f.name}${renderLabels(s.labels)} ${formatValue(s.value)}\n`;
    }
  }
  return out;
}

const CONTAINER_METRICS: Array<{ name: string; help: string; type: 'counter' | 'gauge'; value: (c: IContainerUsage) => Num }> = [
  { name: 'container_cpu_usage_seconds_total', help: 'Cumulative cpu time consumed in seconds.', type: 'counter', value: (c) => c.cpuUsageSecondsTotal },
  { name: 'container_cpu_cfs_periods_total', help: 'Number of elapsed enforcement period intervals.', type: 'counter', value: (c) => c.cpuPeriodsTotal },
  {
    name: 'container_cpu_cfs_throttled_periods_total',
    help: 'Number of throttled period intervals.',
    type: 'counter',
    value: (c) => c.cpuThrottledPeriodsTotal,
  },
  {
    name: 'container_cpu_cfs_throttled_seconds_total',
    help: 'Total time duration the container has been throttled.',
    type: 'counter',
    value: (c) => c.cpuThrottledSecondsTotal,
  },
  {
    name: 'container_memory_working_set_bytes',
    help: 'Current working set in bytes.',
    type: 'gauge',
    value: (c) => c.memoryWorkingSetBytes,
  },
  {
    name: 'container_memory_usage_bytes',
    help: 'Current memory usage in bytes, including all memory regardless of when it was accessed.',
    type: 'gauge',
    value: (c) => c.memoryUsageBytes,
  },
  { name: 'container_fs_reads_bytes_total', help: 'Cumulative count of bytes read.', type: 'counter', value: (c) => c.ioReadBytesTotal },
  { name: 'container_fs_writes_bytes_total', help: 'Cumulative count of bytes written.', type: 'counter', value: (c) => c.ioWriteBytesTotal },
  { name: 'container_processes', help: 'Number of processes running inside the container.', type: 'gauge', value: (c) => c.processes },
];

/** Each container's label set, rendered once and shared by its nine samples. */
function containerLabels(pods: IPodUsage[]): Array<{ c: IContainerUsage; labels: string }> {
  // cAdvisor's id is the cgroup path; an unnamed container (the pod sandbox, or one the
  // informer has not seen yet) keeps container="" as cAdvisor does.
  return pods.flatMap((pod) =>
    (pod.containers ?? []).map((c) => ({
      c,
      labels:
        `{namespace="${escapeLabelValue(pod.namespace ?? '')}",pod="${escapeLabelValue(pod.name ?? '')}",` +
        `container="${escapeLabelValue(c.name ?? '')}",id="${escapeLabelValue(c.cgroupPath ?? '')}"}`,
    })),
  );
}

function gauge(name: string, help: string, value: Num, labels: Labels = {}): Family {
  const v = num(value);
  return { name, help, type: 'gauge', samples: v === undefined ? [] : [{ labels, value: v }] };
}

function pressureFamilies(node: INodeMetrics): Family[] {
  const avg: Family = {
    name: 'nemutator_node_pressure_stall_percent',
    help: 'Share of time (percent) some or all tasks stalled on the resource, averaged over the window (/proc/pressure).',
    type: 'gauge',
    samples: [],
  };
  const total: Family = {
    name: 'nemutator_node_pressure_stall_seconds_total',
    help: 'Total time some or all tasks stalled on the resource (/proc/pressure).',
    type: 'counter',
    samples: [],
  };
  const resources: Array<[string, IPressure | null | undefined]> = [
    ['cpu', node.cpuPressure],
    ['memory', node.memoryPressure],
    ['io', node.ioPressure],
  ];
  for (const [resource, p] of resources) {
    if (!p) continue;
    for (const kind of ['some', 'full'] as const) {
      const windows: Array<[string, Num]> =
        kind === 'some'
          ? [
              ['10s', p.someAvg10],
              ['60s', p.someAvg60],
              ['300s', p.someAvg300],
            ]
          : [
              ['10s', p.fullAvg10],
              ['60s', p.fullAvg60],
              ['300s', p.fullAvg300],
            ];
      for (const [window, value] of windows) {
        const v = num(value);
        if (v !== undefined) avg.samples.push({ labels: { resource, kind, window }, value: v });
      }
      const us = num(kind === 'some' ? p.someTotalUs : p.fullTotalUs);
      if (us !== undefined) total.samples.push({ labels: { resource, kind }, value: us / 1e6 });
    }
  }
  return [avg, total];
}

function nodeFamilies(node: INodeMetrics): Family[] {
  const perCore: Family = {
    name: 'nemutator_node_cpu_core_usage_ratio',
    help: 'Busy share of one CPU core over the last report interval (0..1).',
    type: 'gauge',
    samples: (node.cpuCoreUsage ?? []).map((value, cpu) => ({ labels: { cpu: String(cpu) }, value })),
  };
  const fsSize: Family = { name: 'nemutator_node_filesystem_size_bytes', help: 'Filesystem size in bytes.', type: 'gauge', samples: [] };
  const fsUsed: Family = { name: 'nemutator_node_filesystem_used_bytes', help: 'Filesystem space used in bytes.', type: 'gauge', samples: [] };
  for (const fs of node.filesystems ?? []) {
    const labels = { mountpoint: fs.mount ?? '', device: fs.device ?? '' };
    const size = num(fs.sizeBytes);
    const used = num(fs.usedBytes);
    if (size !== undefined) fsSize.samples.push({ labels, value: size });
    if (used !== undefined) fsUsed.samples.push({ labels, value: used });
  }
  return [
    gauge('nemutator_node_cpu_cores', 'Number of CPU cores.', node.cpuCores),
    gauge('nemutator_node_cpu_usage_cores', 'CPU in use over the last report interval, in cores.', node.cpuUsageCores),
    perCore,
    gauge('nemutator_node_load1', '1-minute load average.', node.load1),
    gauge('nemutator_node_load5', '5-minute load average.', node.load5),
    gauge('nemutator_node_load15', '15-minute load average.', node.load15),
    gauge('nemutator_node_memory_total_bytes', 'Physical memory in bytes.', node.memoryTotalBytes),
    gauge('nemutator_node_memory_used_bytes', 'Memory in use (total - available) in bytes.', node.memoryUsedBytes),
    gauge('nemutator_node_memory_available_bytes', 'Memory available for new work without swapping, in bytes.', node.memoryAvailableBytes),
    gauge('nemutator_node_swap_total_bytes', 'Swap space in bytes.', node.swapTotalBytes),
    gauge('nemutator_node_swap_used_bytes', 'Swap space in use in bytes.', node.swapUsedBytes),
    gauge(
      'nemutator_node_network_receive_bytes_per_second',
      'Bytes received per second on the node interfaces (not veth, bridges, tunnels).',
      node.netRxBytesPerSecond,
    ),
    gauge(
      'nemutator_node_network_transmit_bytes_per_second',
      'Bytes sent per second on the node interfaces (not veth, bridges, tunnels).',
      node.netTxBytesPerSecond,
    ),
    gauge('nemutator_node_disk_read_bytes_per_second', 'Bytes read per second from whole disks.', node.diskReadBytesPerSecond),
    gauge('nemutator_node_disk_written_bytes_per_second', 'Bytes written per second to whole disks.', node.diskWriteBytesPerSecond),
    fsSize,
    fsUsed,
    ...pressureFamilies(node),
    gauge('nemutator_node_uptime_seconds', 'Seconds since the node booted.', node.uptimeSeconds),
  ];
}

/** Characters per chunk of a streamed page: few socket writes, and each chunk small enough to die young in V8's new space. */
const CHUNK_CHARS = 16 * 1024;

/**
 * The report as Prometheus text, in chunks of about `chunkChars` characters, each ending at a
 * line. A 200-pod node's page is ~1 MB; written to the socket chunk by chunk it never exists
 * whole (a string that large goes to V8's large-object space, which only a full GC frees).
 * An empty report yields nothing.
 */
export function* prometheusChunks(report: INodeReport, chunkChars = CHUNK_CHARS): Generator<string, void, undefined> {
  let chunk = '';
  const containers = containerLabels(report.pods ?? []);
  for (const m of CONTAINER_METRICS) {
    // A family without samples gets no HELP/TYPE lines either.
    let header = `# HELP ${m.name} ${escapeHelp(m.help)}\n# TYPE ${m.name} ${m.type}\n`;
    for (const { c, labels } of containers) {
      const value = num(m.value(c));
      if (value === undefined) continue;
      chunk += `${header}${m.name}${labels} ${formatValue(value)}\n`;
      header = '';
      if (chunk.length >= chunkChars) {
        yield chunk;
        chunk = '';
      }
    }
  }
  chunk += render([
    ...(report.node ? nodeFamilies(report.node) : []),
    gauge(
      'nemutator_agent_collect_seconds',
      'Time the agent needed to collect the last report.',
      num(report.collectMs) === undefined ? undefined : num(report.collectMs)! / 1000,
    ),
    gauge('nemutator_agent_report_sequence', 'Sequence number of the last report.', report.seq),
  ]);
  if (chunk !== '') yield chunk;
}

/** The report as Prometheus text in one string (tests, small pages). An empty report renders as an empty page. */
export function renderPrometheus(report: INodeReport): string {
  let page = '';
  for (const chunk of prometheusChunks(report)) page += chunk;
  return page;
}
