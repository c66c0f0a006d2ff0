import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

import type { INodeReport } from '#proto/codec.js';
import { requireTool } from '#test/harness/tools.js';

import { escapeLabelValue, prometheusChunks, renderPrometheus } from './exposition.ts';

const ID = 'e'.repeat(64);
const PATH = `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1111_2222.slice/cri-containerd-${ID}.scope`;

const report: INodeReport = {
  nodeName: 'node-a',
  seq: 7,
  collectMs: 12,
  node: {
    cpuCores: 2,
    cpuUsageCores: 0.5,
    cpuCoreUsage: [0.25, 0.25],
    load1: 1.5,
    load5: 1,
    load15: 0.5,
    memoryTotalBytes: 1000,
    memoryUsedBytes: 400,
    memoryAvailableBytes: 600,
    swapTotalBytes: 0,
    swapUsedBytes: 0,
    netRxBytesPerSecond: 10,
    netTxBytesPerSecond: 20,
    diskReadBytesPerSecond: 30,
    diskWriteBytesPerSecond: 40,
    filesystems: [{ mount: '/', device: '/dev/vda', sizeBytes: 5000, usedBytes: 1000 }],
    cpuPressure: { someAvg10: 1.5, someAvg60: 1, someAvg300: 0.5, someTotalUs: 2_500_000 },
    ioPressure: { someAvg10: 0, someAvg60: 0, someAvg300: 0, someTotalUs: 0, fullAvg10: 0, fullAvg60: 0, fullAvg300: 0, fullTotalUs: 1_000_000 },
    uptimeSeconds: 100,
  },
  pods: [
    {
      uid: '1111-2222',
      namespace: 'shop',
      name: 'cart-7d9f',
      qos: 'burstable',
      containers: [
        {
          id: ID,
          name: 'app',
          runtime: 'containerd',
          cgroupPath: PATH,
          cpuUsageSecondsTotal: 12.5,
          cpuPeriodsTotal: 100,
          cpuThrottledPeriodsTotal: 4,
          cpuThrottledSecondsTotal: 0.25,
          memoryWorkingSetBytes: 2048,
          memoryUsageBytes: 4096,
          ioReadBytesTotal: 1,
          ioWriteBytesTotal: 2,
          processes: 3,
        },
        // A container whose memory is not accounted (controller off): no memory sample for it.
        { id: 'f'.repeat(64), name: '', runtime: 'containerd', cgroupPath: '/x', cpuUsageSecondsTotal: 1 },
      ],
    },
  ],
};

function promtoolCheck(text: string): { status: number | null; output: string } {
  const promtool = requireTool('promtool', 'prometheus');
  const res = spawnSync(promtool, ['check', 'metrics'], { input: text, encoding: 'utf8' });
  return { status: res.status, output: `${res.stdout}${res.stderr}` };
}

describe('renderPrometheus', () => {
  const text = renderPrometheus(report);

  it('exposes container usage under cAdvisor names and labels', () => {
    const labels = `{namespace="shop",pod="cart-7d9f",container="app",id="${PATH}"}`;
    expect(text).toContain(`container_cpu_usage_seconds_total${labels} 12.5\n`);
    expect(text).toContain(`container_memory_working_set_bytes${labels} 2048\n`);
    expect(text).toContain(`container_cpu_cfs_periods_total${labels} 100\n`);
    expect(text).toContain(`container_cpu_cfs_throttled_periods_total${labels} 4\n`);
    expect(text).toContain(`container_cpu_cfs_throttled_seconds_total${labels} 0.25\n`);
    expect(text).toContain(`container_fs_reads_bytes_total${labels} 1\n`);
    expect(text).toContain(`container_fs_writes_bytes_total${labels} 2\n`);
    expect(text).toContain('# TYPE container_cpu_usage_seconds_total counter\n');
    expect(text).toContain('# TYPE container_memory_working_set_bytes gauge\n');
    expect(text.match(/^container_memory_working_set_bytes/gm)).toHaveLength(1);
    expect(text.match(/^container_cpu_usage_seconds_total/gm)).toHaveLength(2);
  });

  it('exposes node gauges, per core, per filesystem and per pressure window', () => {
    expect(text).toContain('nemutator_node_cpu_cores 2\n');
    expect(text).toContain('nemutator_node_cpu_core_usage_ratio{cpu="1"} 0.25\n');
    expect(text).toContain('nemutator_node_memory_available_bytes 600\n');
    expect(text).toContain('nemutator_node_filesystem_used_bytes{mountpoint="/",device="/dev/vda"} 1000\n');
    expect(text).toContain('nemutator_node_pressure_stall_percent{resource="cpu",kind="some",window="10s"} 1.5\n');
    expect(text).toContain('nemutator_node_pressure_stall_seconds_total{resource="io",kind="full"} 1\n');
    // No memory pressure in the report, and no cpu full line: no samples for them.
    expect(text).not.toMatch(/resource="memory"/);
    expect(text).not.toMatch(/resource="cpu",kind="full"/);
    expect(text).toContain('nemutator_agent_collect_seconds 0.012\n');
  });

  it('is valid exposition text that promtool accepts without lint complaints', () => {
    const { status, output } = promtoolCheck(text);
    expect(output).toBe('');
    expect(status).toBe(0);
  });

  it('escapes backslash, double quote and newline in label values so the page still parses', () => {
    expect(escapeLabelValue('a\\b"c\nd')).toBe('a\\\\b\\"c\\nd');
    const nasty: INodeReport = {
      pods: [{ uid: 'u', namespace: 'ns"x', name: 'p\\q\nr', containers: [{ id: 'i', name: 'c', cgroupPath: '/a"b', cpuUsageSecondsTotal: 1 }] }],
    };
    const out = renderPrometheus(nasty);
    expect(out).toContain('container_cpu_usage_seconds_total{namespace="ns\\"x",pod="p\\\\q\\nr",container="c",id="/a\\"b"} 1\n');
    expect(promtoolCheck(out).status).toBe(0);
  });

  it('renders an empty report as an empty page', () => {
    expect(renderPrometheus({})).toBe('');
  });
});

describe('prometheusChunks', () => {
  /** A node of `pods` pods of two containers, each with every container metric. */
  const busyNode = (pods: number): INodeReport => ({
    ...report,
    pods: Array.from({ length: pods }, (_, i) => ({
      ...report.pods![0]!,
      uid: `uid-${i}`,
      name: `pod-${i}`,
      containers: report.pods![0]!.containers!.map((c) => ({ ...c, cgroupPath: `${c.cgroupPath}-${i}` })),
    })),
  });

  it('streams the same page in whole lines, no chunk much larger than asked for', () => {
    const big = busyNode(300);
    const chunks = [...prometheusChunks(big, 4096)];
    expect(chunks.join('')).toBe(renderPrometheus(big));
    expect(chunks.length).toBeGreaterThan(20);
    const longestLine = Math.max(
      ...renderPrometheus(big)
        .split('\n')
        .map((l) => l.length + 1),
    );
    for (const chunk of chunks) expect(chunk.endsWith('\n')).toBe(true);
    // The last chunk also carries the node's own gauges, whose number does not grow with pods.
    for (const chunk of chunks.slice(0, -1)) expect(chunk.length).toBeLessThan(4096 + longestLine + 200);
    expect(promtoolCheck(chunks.join('')).status).toBe(0);
  });

  it('yields nothing for an empty report', () => {
    expect([...prometheusChunks({})]).toEqual([]);
  });
});
