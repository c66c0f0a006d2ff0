// The harness itself: the real services start, answer and stop cleanly, the Go fixtures build
// and run, and "pods" get real cgroups that account CPU and are removed afterwards.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { describe, expect, inject, it } from 'vitest';

import { cgroupV2Root, createPodCgroup, spawnInCgroup } from './cgroup.ts';
import { testControllerConfig } from './controller.ts';
import { buildGo } from './golang.ts';
import { openMetrics, type SeriesSpec } from './openmetrics.ts';
import { freePort } from './ports.ts';
import { startPrometheus } from './prometheus.ts';
import { startRedis } from './redis.ts';
import { requireTool, runTool, sleep } from './tools.ts';
import { until as waitUntil } from './wait.ts';

const FIXTURES = fileURLToPath(new URL('../fixtures/go/', import.meta.url));

describe('tools and ports', () => {
  it('finds an installed tool by absolute path and names the package of a missing one', () => {
    expect(requireTool('sh', 'dash')).toMatch(/^\/.*\/sh$/);
    expect(() => requireTool('nemutator-no-such-tool', 'nemutator-pkg')).toThrow(
      'nemutator-no-such-tool not found: install it with `apt-get install nemutator-pkg` (CI installs it in .ci/run)',
    );
  });

  it('gives a port that can be bound on loopback', async () => {
    const port = await freePort();
    expect(port).toBeGreaterThan(0);
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', resolve);
    });
    await new Promise((resolve) => server.close(resolve));
  });
});

describe('testControllerConfig', () => {
  it('parses string overrides as flags are parsed (a duration in words becomes ms) and refuses a bad one', () => {
    const c = testControllerConfig({ nodeStaleAfter: '1s', telemetryRefresh: '10m', maxReviewBytes: 4096 });
    expect(c.nodeStaleAfter).toBe(1000);
    expect(c.telemetryRefresh).toBe(600_000);
    expect(c.maxReviewBytes).toBe(4096);
    expect(() => testControllerConfig({ nodeStaleAfter: 'soon' })).toThrow(expect.objectContaining({ code: 'NEMU_ERR_CONFIG' }));
  });
});

describe('shared services from global setup', () => {
  it('redis answers PING', async () => {
    const client = new Redis(inject('redisUrl'), { maxRetriesPerRequest: 1 });
    try {
      expect(await client.ping()).toBe('PONG');
    } finally {
      client.disconnect();
    }
  });

  it('prometheus is ready and answers queries', async () => {
    const res = await fetch(`${inject('prometheusUrl')}/api/v1/query?query=42`);
    const body = (await res.json()) as { status: string; data: { result: [number, string] } };
    expect(body.status).toBe('success');
    expect(body.data.result[1]).toBe('42');
  });
});

describe('startRedis', () => {
  it('runs a real redis-server that survives restart() and is gone after stop()', async () => {
    const redis = await startRedis();
    const client = new Redis(redis.url, { maxRetriesPerRequest: 20, retryStrategy: () => 50 });
    try {
      expect(await client.ping()).toBe('PONG');
      await client.set('nemutator:k', 'v');
      expect(await client.get('nemutator:k')).toBe('v');

      await redis.restart();
      expect(await client.ping()).toBe('PONG');
      // No persistence by default: a restart starts empty.
      expect(await client.get('nemutator:k')).toBeNull();
    } finally {
      client.disconnect();
      await redis.stop();
    }
    expect(existsSync(redis.dir)).toBe(false);
    expect(await refusesConnection(redis.port)).toBe(true);
  });

  it('keeps data across restart() with persist', async () => {
    const redis = await startRedis({ persist: true });
    const client = new Redis(redis.url, { maxRetriesPerRequest: 20, retryStrategy: () => 50 });
    try {
      await client.set('nemutator:kept', 'yes');
      await redis.restart();
      expect(await client.get('nemutator:kept')).toBe('yes');
    } finally {
      client.disconnect();
      await redis.stop();
    }
  });

  it('starts on a requested port', async () => {
    const port = await freePort();
    const redis = await startRedis({ port });
    try {
      expect(redis.port).toBe(port);
      expect(redis.url).toBe(`redis://127.0.0.1:${port}`);
      expect(await refusesConnection(port)).toBe(false);
    } finally {
      await redis.stop();
    }
  });
});

describe('openMetrics', () => {
  it('groups families, names counter samples, escapes labels and ends with # EOF', () => {
    const text = openMetrics([
      { name: 'requests_total', type: 'counter', labels: { pod: 'b' }, start: 100, end: 160, stepSeconds: 30, value: (t) => t },
      { name: 'temperature', labels: { note: 'a "quoted"\\ line\nnext' }, start: 100, end: 100, stepSeconds: 1, value: () => 0.1 },
      { name: 'requests_total', type: 'counter', labels: { pod: 'a' }, start: 100, end: 130, stepSeconds: 30, value: () => Infinity },
    ]);
    expect(text).toBe(
      [
        '# TYPE requests counter',
        'requests_total{pod="b"} 100 100',
        'requests_total{pod="b"} 130 130',
        'requests_total{pod="b"} 160 160',
        'requests_total{pod="a"} +Inf 100',
        'requests_total{pod="a"} +Inf 130',
        '# TYPE temperature gauge',
        'temperature{note="a \\"quoted\\"\\\\ line\\nnext"} 0.1 100',
        '# EOF',
        '',
      ].join('\n'),
    );
  });

  it('rejects what promtool would reject', () => {
    const base = { labels: {}, start: 0, end: 10, stepSeconds: 1, value: () => 1 };
    expect(() => openMetrics([{ ...base, name: 'bad-name' }])).toThrow(/not a metric name/);
    expect(() => openMetrics([{ ...base, name: 'x', labels: { 'a-b': '1' } }])).toThrow(/not a label name/);
    expect(() =>
      openMetrics([
        { ...base, name: 'x' },
        { ...base, name: 'x' },
      ]),
    ).toThrow(/given twice/);
    expect(() =>
      openMetrics([
        { ...base, name: 'x', type: 'counter' },
        { ...base, name: 'x', labels: { a: '1' } },
      ]),
    ).toThrow(/both counter and gauge/);
  });
});

describe('startPrometheus with backfill', () => {
  it('serves a generated 3-day history through query_range, exactly, also after restart()', async () => {
    const step = 60;
    const end = Math.floor(Date.now() / 1000 / step) * step - step;
    const start = end - 3 * 86_400;
    const gauge: SeriesSpec = {
      name: 'nemutator_test_cpu_cores',
      labels: { namespace: 'shop', pod: 'cart-0' },
      start,
      end,
      stepSeconds: step,
      // Irregular floats, so a rounding anywhere on the way would show.
      value: (t) => 1.5 + Math.sin(t / 3_600) / 3 + (t % 7) / 1_000,
    };
    const counter: SeriesSpec = {
      name: 'nemutator_test_requests_total',
      type: 'counter',
      labels: { pod: 'cart-0' },
      start,
      end,
      stepSeconds: step,
      value: (t) => (t - start) * 2.5,
    };
    const prometheus = await startPrometheus({ backfill: openMetrics([gauge, counter]) });
    try {
      const instants = [start, start + 7 * step, start + 86_400 + 13 * step, end - 11 * step, end];
      for (const t of instants) {
        expect(await queryAt(prometheus.url, 'nemutator_test_cpu_cores{pod="cart-0"}', t)).toBe(gauge.value(t));
        expect(await queryAt(prometheus.url, 'nemutator_test_requests_total', t)).toBe(counter.value(t));
      }

      // The whole range at hourly resolution: every point is a generated sample.
      const points = await queryRange(prometheus.url, 'nemutator_test_cpu_cores', start, end, 3_600);
      expect(points).toHaveLength(3 * 24 + 1);
      for (const [t, v] of points) expect(v).toBe(gauge.value(t));

      await prometheus.restart();
      expect(await queryAt(prometheus.url, 'nemutator_test_cpu_cores', start)).toBe(gauge.value(start));
    } finally {
      await prometheus.stop();
    }
    expect(existsSync(prometheus.dataDir)).toBe(false);
    expect(await refusesConnection(prometheus.port)).toBe(true);
  });
});

describe('buildGo', () => {
  it('builds hotloop with symbols, which runs and reports its throughput', async () => {
    const bin = await buildGo(join(FIXTURES, 'hotloop'));
    expect(bin.startsWith('/')).toBe(true);
    expect(elfSectionNames(await readFile(bin))).toContain('.symtab');
    const go = requireTool('go', 'golang-go');
    const { stdout: symbols } = await runTool(go, ['tool', 'nm', bin]);
    expect(symbols).toMatch(/ T main\.hotFunction$/m);

    const { stdout } = await runTool(bin, ['-seconds', '0.3']);
    expect(stdout).toMatch(/^pid=\d+\n/);
    expect(throughputOf(stdout)).toBeGreaterThan(0);

    // A second build with the same sources and options is the cached binary.
    expect(await buildGo(join(FIXTURES, 'hotloop'))).toBe(bin);
  });

  it('builds a stripped hotloop without a symbol table', async () => {
    const normal = await buildGo(join(FIXTURES, 'hotloop'));
    const stripped = await buildGo(join(FIXTURES, 'hotloop'), { stripped: true });
    expect(stripped).not.toBe(normal);
    expect(elfSectionNames(await readFile(stripped))).not.toContain('.symtab');
    const go = requireTool('go', 'golang-go');
    await expect(runTool(go, ['tool', 'nm', stripped])).rejects.toThrow(/no symbols/);
  });

  it('prints the pid at start and the throughput on SIGTERM', async () => {
    const bin = await buildGo(join(FIXTURES, 'hotloop'), { out: join(FIXTURES, '../../.tmp/hotloop-copy') });
    const child = spawn(bin, [], { stdio: ['ignore', 'pipe', 'inherit'] });
    const output = collect(child);
    const pid = Number((await waitFor(output, /^pid=(\d+)$/m))[1]);
    expect(pid).toBe(child.pid);
    // It has run some batches once it has used CPU: then its throughput is above 0.
    await until(async () => {
      const f = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
      return Number(f[11]) + Number(f[12]) >= 10; // clock ticks: 0.1 s of CPU
    }, 'the hot loop to use 0.1 s of CPU');
    child.kill('SIGTERM');
    expect(await exitCode(child)).toBe(0);
    expect(throughputOf(output.text)).toBeGreaterThan(0);
  });
});

describe('pod cgroups', () => {
  it('removes the pod level once the last of its containers is cleaned up, in either order', async () => {
    for (const order of [
      [0, 1],
      [1, 0],
    ] as const) {
      const first = await createPodCgroup();
      const second = await createPodCgroup({ podUid: first.podUid });
      expect(second.podDir).toBe(first.podDir);
      const both = [first, second];
      await both[order[0]]!.cleanup();
      expect(existsSync(first.podDir)).toBe(true);
      await both[order[1]]!.cleanup();
      expect(existsSync(first.podDir)).toBe(false);
    }
  });

  it('finds the cgroup v2 root', () => {
    const root = cgroupV2Root();
    expect(existsSync(join(root, 'cgroup.procs'))).toBe(true);
  });

  it('puts a spawned process in the container cgroup from the start and accounts its CPU', async () => {
    const cg = await createPodCgroup();
    const uid = cg.podUid.replace(/-/g, '_');
    expect(cg.qos).toBe('burstable');
    expect(cg.relPath).toBe(`/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${uid}.slice/cri-containerd-${cg.containerId}.scope`);
    expect(cg.containerDir).toBe(join(cg.root, cg.relPath));
    expect(cg.podDir).toBe(join(cg.containerDir, '..'));
    let child: ChildProcess | undefined;
    try {
      child = spawnInCgroup(cg, '/bin/sh', ['-c', 'cat /proc/self/cgroup; while :; do :; done'], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      const output = collect(child);
      // `cat` is a child of the spinning shell: it was in the cgroup before it ran.
      await waitFor(output, new RegExp(`^0::${escapeRegExp(cg.relPath)}$`, 'm'));
      expect(await cgroupProcs(cg.containerDir)).toContain(child.pid);
      expect(await readFile(`/proc/${child.pid}/cgroup`, 'utf8')).toContain(`0::${cg.relPath}\n`);

      const before = await usageUsec(cg.containerDir);
      // The spinning shell's CPU shows up in its container's cpu.stat.
      const after = await waitUntil('50 ms of CPU accounted to the container', async () => {
        const now = await usageUsec(cg.containerDir);
        return now - before > 50_000 ? now : undefined;
      });
      expect(after - before).toBeGreaterThan(50_000);
      // The pod level sums its containers, as kubelet's pod cgroup does.
      expect(await usageUsec(cg.podDir)).toBeGreaterThanOrEqual(after);
    } finally {
      await cg.cleanup();
    }
    expect(await exitSignal(child)).toBe('SIGKILL');
    expect(existsSync(cg.containerDir)).toBe(false);
    expect(existsSync(cg.podDir)).toBe(false);
  });

  it('names guaranteed pods and CRI-O scopes as kubelet does and kills every process on cleanup', async () => {
    const containerId = 'ab'.repeat(32);
    const cg = await createPodCgroup({
      podUid: '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0',
      containerId,
      qos: 'guaranteed',
      runtime: 'crio',
    });
    let child: ChildProcess | undefined;
    try {
      expect(cg.relPath).toBe(`/kubepods.slice/kubepods-pod0f1e2d3c_4b5a_6978_8796_a5b4c3d2e1f0.slice/crio-${containerId}.scope`);
      child = spawnInCgroup(cg, '/bin/sh', ['-c', 'sleep 1000 & sleep 1000 & wait'], { stdio: 'ignore' });
      await until(async () => (await cgroupProcs(cg.containerDir)).length === 3);
    } finally {
      await cg.cleanup();
    }
    expect(await exitSignal(child)).toBe('SIGKILL');
    expect(existsSync(cg.containerDir)).toBe(false);
    expect(existsSync(cg.podDir)).toBe(false);
  });
});

// --- helpers -------------------------------------------------------------------------------

async function queryAt(url: string, query: string, t: number): Promise<number> {
  const res = await fetch(`${url}/api/v1/query?${new URLSearchParams({ query, time: String(t) })}`);
  const body = (await res.json()) as { status: string; data: { result: Array<{ value: [number, string] }> } };
  expect(body.status).toBe('success');
  expect(body.data.result).toHaveLength(1);
  const [at, value] = body.data.result[0]!.value;
  expect(at).toBe(t);
  return Number(value);
}

async function queryRange(url: string, query: string, start: number, end: number, step: number): Promise<Array<[number, number]>> {
  const params = new URLSearchParams({ query, start: String(start), end: String(end), step: String(step) });
  const res = await fetch(`${url}/api/v1/query_range?${params}`);
  const body = (await res.json()) as { status: string; data: { result: Array<{ values: Array<[number, string]> }> } };
  expect(body.status).toBe('success');
  expect(body.data.result).toHaveLength(1);
  return body.data.result[0]!.values.map(([t, v]) => [t, Number(v)]);
}

function refusesConnection(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

/** Section names of an ELF64 little-endian file, read from its section header table. */
function elfSectionNames(elf: Buffer): string[] {
  expect(elf.subarray(0, 4).toString('latin1')).toBe('\x7fELF');
  const shoff = Number(elf.readBigUInt64LE(0x28));
  const shentsize = elf.readUInt16LE(0x3a);
  const shnum = elf.readUInt16LE(0x3c);
  const shstrndx = elf.readUInt16LE(0x3e);
  const header = (i: number): number => shoff + i * shentsize;
  const strtab = Number(elf.readBigUInt64LE(header(shstrndx) + 0x18));
  const names: string[] = [];
  for (let i = 0; i < shnum; i++) {
    const nameOffset = strtab + elf.readUInt32LE(header(i));
    names.push(elf.subarray(nameOffset, elf.indexOf(0, nameOffset)).toString('latin1'));
  }
  return names;
}

function throughputOf(stdout: string): number {
  const match = /^iterations=(\d+) seconds=([\d.]+) throughput=(\d+)$/m.exec(stdout);
  expect(match, `no throughput line in:\n${stdout}`).not.toBeNull();
  return Number(match![3]);
}

function collect(child: ChildProcess): { text: string } {
  const output = { text: '' };
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (output.text += d));
  return output;
}

async function waitFor(output: { text: string }, pattern: RegExp): Promise<RegExpExecArray> {
  let match: RegExpExecArray | null = null;
  await until(async () => (match = pattern.exec(output.text)) !== null, `output matching ${pattern}; got:\n${output.text}`);
  return match!;
}

async function until(probe: () => Promise<boolean>, what = 'condition', timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

function exitCode(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

function exitSignal(child: ChildProcess | undefined): Promise<NodeJS.Signals | null> {
  if (child === undefined) return Promise.resolve(null);
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.signalCode);
  return new Promise((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
}

async function cgroupProcs(dir: string): Promise<number[]> {
  const text = await readFile(join(dir, 'cgroup.procs'), 'utf8');
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map(Number);
}

async function usageUsec(dir: string): Promise<number> {
  const stat = await readFile(join(dir, 'cpu.stat'), 'utf8');
  const match = /^usage_usec (\d+)$/m.exec(stat);
  expect(match).not.toBeNull();
  return Number(match![1]);
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
