// A real Prometheus on loopback, optionally with history backfilled by promtool.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import { requireTool, runTool, ServiceProcess, startOnFreePort } from './tools.ts';

export interface PrometheusServer {
  url: string;
  port: number;
  /** The TSDB directory (backfilled blocks land here). */
  dataDir: string;
  /** Stops the server and removes its directory. */
  stop(): Promise<void>;
  /** Stops and starts it again on the same port and data directory; the data survives. */
  restart(): Promise<void>;
}

export async function startPrometheus(
  opts: {
    port?: number;
    /** OpenMetrics text (see openmetrics.ts) turned into TSDB blocks before start. */
    backfill?: string;
    /** --storage.tsdb.retention.time; default 3650d so old backfilled samples are kept. */
    retention?: string;
    rulesFiles?: string[];
    /** global.evaluation_interval; default 1s so rule tests do not wait a minute. */
    evaluationInterval?: string;
  } = {},
): Promise<PrometheusServer> {
  const bin = requireTool('prometheus', 'prometheus');
  const home = await mkdtemp(join(tmpdir(), 'nemutator-prometheus-'));
  const dataDir = join(home, 'data');
  const configFile = join(home, 'prometheus.yml');
  try {
    await mkdir(dataDir);
    const rules = (opts.rulesFiles ?? []).map((f) => `  - ${JSON.stringify(resolve(f))}`);
    await writeFile(
      configFile,
      ['global:', `  evaluation_interval: ${opts.evaluationInterval ?? '1s'}`, ...(rules.length > 0 ? ['rule_files:', ...rules] : []), ''].join('\n'),
    );
    if (opts.backfill !== undefined) await backfill(home, dataDir, opts.backfill);
  } catch (err) {
    await rm(home, { recursive: true, force: true });
    throw err;
  }

  const launch = (port: number): ServiceProcess =>
    new ServiceProcess(`prometheus on 127.0.0.1:${port}`, bin, [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${dataDir}`,
      `--storage.tsdb.retention.time=${opts.retention ?? '3650d'}`,
      `--web.listen-address=127.0.0.1:${port}`,
      // Tests push samples to the shared server and delete what they wrote.
      '--web.enable-remote-write-receiver',
      '--web.enable-admin-api',
      '--log.level=warn',
    ]);
  const ready = async (service: ServiceProcess, port: number): Promise<void> =>
    service.waitUntil(
      async () => {
        const res = await fetch(`http://127.0.0.1:${port}/-/ready`, { signal: AbortSignal.timeout(1_000) });
        await res.arrayBuffer();
        return res.ok;
      },
      'ready (/-/ready)',
      30_000,
    );

  const started = await startOnFreePort(opts.port, launch, ready, () => rm(home, { recursive: true, force: true }));
  const port = started.port;
  let service = started.service;

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    dataDir,
    async stop() {
      await service.stop();
      await rm(home, { recursive: true, force: true });
    },
    async restart() {
      await service.stop();
      service = launch(port);
      await ready(service, port);
    },
  };
}

async function backfill(home: string, dataDir: string, text: string): Promise<void> {
  const promtool = requireTool('promtool', 'prometheus');
  const input = join(home, 'backfill.om');
  await writeFile(input, text);
  // promtool cuts blocks at 2h by default: days of history would become dozens of blocks
  // that Prometheus then compacts in the background. 31d (Prometheus' own cap) makes it a
  // handful of large blocks. promtool lists this flag only under --help-long.
  await runTool(promtool, ['tsdb', 'create-blocks-from', 'openmetrics', '--quiet', '--max-block-duration=744h', input, dataDir]);
  await rm(input);
}
