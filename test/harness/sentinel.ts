// A Redis Sentinel group on loopback, from Debian's real binaries: one master, replicas
// (`redis-server --replicaof`) and sentinels (`redis-sentinel <config file>`), each on a free
// port in its own temporary directory, with short failure detection so a test can kill the
// master and see a replica promoted within seconds.
import { writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { requireTool, ServiceProcess, startOnFreePort } from './tools.ts';
import { until } from './wait.ts';

export interface RedisNode {
  port: number;
  service: ServiceProcess;
}

export interface SentinelGroup {
  masterName: string;
  /** The sentinels, for ioredis' `sentinels`. */
  sentinels: Array<{ host: string; port: number }>;
  /** The same as the controller's redisSentinels value. */
  sentinelList: string;
  /** Master first, then the replicas, as started. */
  nodes: RedisNode[];
  /** The master's port as the first sentinel that answers names it. */
  masterPort(): Promise<number>;
  /** kill -9 of one data node; resolves once it is gone. */
  kill(port: number): Promise<void>;
  /** Stops every process and removes the directories. */
  stop(): Promise<void>;
}

export interface SentinelGroupOptions {
  masterName?: string;
  replicas?: number;
  sentinels?: number;
  /** Sentinel's down-after-milliseconds: no PING answer for this long = down. */
  downAfterMs?: number;
  /** Sentinel's failover-timeout (a failed attempt is retried after twice this). */
  failoverTimeoutMs?: number;
  /** Extra redis-server arguments for every data node. */
  redisArgs?: string[];
}

export async function startSentinelGroup(opts: SentinelGroupOptions = {}): Promise<SentinelGroup> {
  const redisBin = requireTool('redis-server', 'redis-server');
  const sentinelBin = requireTool('redis-sentinel', 'redis-sentinel');
  const masterName = opts.masterName ?? 'nemu-master';
  const replicaCount = opts.replicas ?? 2;
  const sentinelCount = opts.sentinels ?? 3;
  const quorum = Math.floor(sentinelCount / 2) + 1;
  const dirs: string[] = [];
  const services: ServiceProcess[] = [];
  const cleanup = async (): Promise<void> => {
    await Promise.all(services.map((s) => s.stop()));
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
  };

  const startNode = async (replicaOf?: number): Promise<RedisNode> => {
    const dir = await mkdtemp(join(tmpdir(), 'nemutator-sentinel-redis-'));
    dirs.push(dir);
    const launch = (port: number): ServiceProcess => {
      const service = new ServiceProcess(`redis-server${replicaOf ? ` (replica of ${replicaOf})` : ' (master)'} on 127.0.0.1:${port}`, redisBin, [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--dir',
        dir,
        '--save',
        '',
        '--appendonly',
        'no',
        '--daemonize',
        'no',
        '--logfile',
        '',
        ...(replicaOf ? ['--replicaof', '127.0.0.1', String(replicaOf)] : []),
        ...(opts.redisArgs ?? []),
      ]);
      services.push(service);
      return service;
    };
    const ready = (service: ServiceProcess, port: number): Promise<void> =>
      service.waitUntil(async () => (await command(port, ['PING'])) === 'PONG', 'answering PING');
    const { service, port } = await startOnFreePort(undefined, launch, ready, async () => undefined);
    return { port, service };
  };

  try {
    const master = await startNode();
    const replicas: RedisNode[] = [];
    for (let i = 0; i < replicaCount; i++) replicas.push(await startNode(master.port));
    // Sentinels find the replicas in the master's INFO: start them once every replica is linked.
    for (const r of replicas) {
      await r.service.waitUntil(async () => String(await command(r.port, ['INFO', 'replication'])).includes('master_link_status:up'), 'linked to its master');
    }

    const sentinelPorts: number[] = [];
    for (let i = 0; i < sentinelCount; i++) {
      const dir = await mkdtemp(join(tmpdir(), 'nemutator-sentinel-'));
      dirs.push(dir);
      const launch = (port: number): ServiceProcess => {
        // Sentinel rewrites its own config file (what it learns about replicas and other
        // sentinels), so each gets a writable one of its own.
        const file = join(dir, `sentinel-${port}.conf`);
        writeFileSync(
          file,
          [
            `port ${port}`,
            'bind 127.0.0.1',
            'daemonize no',
            'logfile ""',
            `dir ${dir}`,
            `sentinel monitor ${masterName} 127.0.0.1 ${master.port} ${quorum}`,
            `sentinel down-after-milliseconds ${masterName} ${opts.downAfterMs ?? 1000}`,
            `sentinel failover-timeout ${masterName} ${opts.failoverTimeoutMs ?? 2000}`,
            `sentinel parallel-syncs ${masterName} 1`,
            '',
          ].join('\n'),
        );
        const service = new ServiceProcess(`redis-sentinel on 127.0.0.1:${port}`, sentinelBin, [file]);
        services.push(service);
        return service;
      };
      const ready = (service: ServiceProcess, port: number): Promise<void> =>
        service.waitUntil(async () => (await command(port, ['PING'])) === 'PONG', 'answering PING');
      const { port } = await startOnFreePort(undefined, launch, ready, async () => undefined);
      sentinelPorts.push(port);
    }

    // Every sentinel knows every replica and the other sentinels (hello messages every 2 s):
    // only then can a majority agree the master is down and elect a leader.
    await until(
      'the sentinels to know each other and the replicas',
      async () => {
        for (const port of sentinelPorts) {
          const others = await command(port, ['SENTINEL', 'SENTINELS', masterName]).catch(() => []);
          const reps = await command(port, ['SENTINEL', 'REPLICAS', masterName]).catch(() => []);
          if (!Array.isArray(others) || others.length !== sentinelCount - 1) return false;
          if (!Array.isArray(reps) || reps.length !== replicaCount) return false;
          if (reps.some((r) => !Array.isArray(r) || /s_down|o_down|disconnected/.test(String(field(r, 'flags'))))) return false;
        }
        return true;
      },
      30_000,
      100,
    );

    const nodes = [master, ...replicas];
    return {
      masterName,
      sentinels: sentinelPorts.map((port) => ({ host: '127.0.0.1', port })),
      sentinelList: sentinelPorts.map((p) => `127.0.0.1:${p}`).join(','),
      nodes,
      async masterPort() {
        for (const port of sentinelPorts) {
          const addr = await command(port, ['SENTINEL', 'GET-MASTER-ADDR-BY-NAME', masterName]).catch(() => undefined);
          if (Array.isArray(addr) && addr.length === 2) return Number(addr[1]);
        }
        throw new Error(`no sentinel of ${sentinelPorts.join(',')} names a master for ${masterName}`);
      },
      async kill(port) {
        const node = nodes.find((n) => n.port === port);
        if (!node) throw new Error(`no redis-server of this group on port ${port}`);
        node.service.child.kill('SIGKILL');
        await until(`redis-server on ${port} to exit after SIGKILL`, () => !node.service.running, 5000, 5);
      },
      stop: cleanup,
    };
  } catch (e) {
    await cleanup();
    throw e;
  }
}

/** `flags` and the like from a SENTINEL REPLICAS entry (a flat [name, value, …] array). */
function field(entry: unknown[], name: string): unknown {
  const i = entry.indexOf(name);
  return i >= 0 && i % 2 === 0 ? entry[i + 1] : undefined;
}

type Resp = string | number | null | Resp[] | Error;

/**
 * One command over raw RESP, so the harness depends on no client library's retry logic (and
 * the same helper talks to sentinels and data nodes). Errors come back as Error values.
 */
export function command(port: number, args: string[], timeoutMs = 1000): Promise<Resp> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let buf = Buffer.alloc(0);
    const done = (err: Error | undefined, value?: Resp): void => {
      socket.destroy();
      if (err) reject(err);
      else resolve(value as Resp);
    };
    socket.setTimeout(timeoutMs, () => done(new Error(`no answer from 127.0.0.1:${port} within ${timeoutMs} ms`)));
    socket.once('error', (e) => done(e));
    socket.once('connect', () => socket.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`));
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const parsed = parse(buf, 0);
      if (parsed) done(undefined, parsed.value);
    });
  });
}

/** A RESP2 reply at `at`, or undefined when `buf` does not hold all of it yet. */
function parse(buf: Buffer, at: number): { value: Resp; next: number } | undefined {
  const eol = buf.indexOf('\r\n', at);
  if (eol < 0) return undefined;
  const line = buf.toString('utf8', at + 1, eol);
  const next = eol + 2;
  switch (String.fromCharCode(buf[at]!)) {
    case '+':
      return { value: line, next };
    case '-':
      return { value: new Error(line), next };
    case ':':
      return { value: Number(line), next };
    case '$': {
      const n = Number(line);
      if (n < 0) return { value: null, next };
      if (buf.length < next + n + 2) return undefined;
      return { value: buf.toString('utf8', next, next + n), next: next + n + 2 };
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return { value: null, next };
      const items: Resp[] = [];
      let pos = next;
      for (let i = 0; i < n; i++) {
        const item = parse(buf, pos);
        if (!item) return undefined;
        items.push(item.value);
        pos = item.next;
      }
      return { value: items, next: pos };
    }
    default:
      throw new Error(`not a RESP reply: ${JSON.stringify(buf.toString('utf8', at, Math.min(buf.length, at + 40)))}`);
  }
}
