// A real redis-server on loopback, in its own temporary directory, for one test or one run.
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { requireTool, ServiceProcess, startOnFreePort } from './tools.ts';

export interface RedisServer {
  url: string;
  port: number;
  dir: string;
  /** Stops the server and removes its directory. */
  stop(): Promise<void>;
  /**
   * Stops and starts it again on the same port and directory (data survives only with
   * `persist`); `whileDown` runs between the two (an outage of a chosen length).
   */
  restart(whileDown?: () => Promise<unknown>): Promise<void>;
}

export async function startRedis(
  opts: {
    port?: number;
    /** Append-only file with fsync on every write, so data survives restart(). Default: no persistence. */
    persist?: boolean;
  } = {},
): Promise<RedisServer> {
  const bin = requireTool('redis-server', 'redis-server');
  const dir = await mkdtemp(join(tmpdir(), 'nemutator-redis-'));
  const persistence = opts.persist ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no'];

  const launch = (port: number): ServiceProcess =>
    new ServiceProcess(`redis-server on 127.0.0.1:${port}`, bin, [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      dir,
      '--save',
      '',
      ...persistence,
      '--daemonize',
      'no',
      '--logfile',
      '',
    ]);
  const ready = async (service: ServiceProcess, port: number): Promise<void> => service.waitUntil(() => answersPing(port), 'answering PING');

  const started = await startOnFreePort(opts.port, launch, ready, () => rm(dir, { recursive: true, force: true }));
  const port = started.port;
  let service = started.service;

  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    dir,
    async stop() {
      await service.stop();
      await rm(dir, { recursive: true, force: true });
    },
    async restart(whileDown) {
      await service.stop();
      await whileDown?.();
      await mkdir(dir, { recursive: true });
      service = launch(port);
      await ready(service, port);
    },
  };
}

/** One raw RESP round trip, so readiness does not depend on a client library's retry logic. */
function answersPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let reply = '';
    const finish = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1_000, () => finish(false));
    socket.once('error', () => finish(false));
    socket.once('connect', () => socket.write('*1\r\n$4\r\nPING\r\n'));
    socket.setEncoding('utf8').on('data', (d: string) => {
      reply += d;
      if (reply.includes('\r\n')) finish(reply.startsWith('+PONG'));
    });
  });
}
