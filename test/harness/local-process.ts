// Local mode (controller + agent) in a child process, the way `npm start` runs it, for tests
// where a crash must be observable: the process exits, the test sees `exit`. Ports are chosen
// by the kernel and read from the banner.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { until } from './wait.ts';

export interface LocalProcess {
  child: ChildProcess;
  stateDir: string;
  webhookUrl: string;
  apiUrl: string;
  fleetUrl: string;
  agentMetricsUrl: string;
  adminToken: string;
  /** Everything the process printed (stdout and stderr). */
  output(): string;
  /** Exit code or signal once it has exited, else undefined. */
  exited(): { code: number | null; signal: NodeJS.Signals | null } | undefined;
  /** Peak resident set size of the process so far, in MiB (VmHWM, from /proc). */
  peakRssMiB(): number;
  /** SIGKILL (if still running) and removes the state directory. */
  kill(): Promise<void>;
}

/**
 * `flags` as on the command line (`--max-reviews-in-flight`, `8`); `env` added to the child's
 * (NODE_OPTIONS…); `stateDir` to start on an existing state directory (a restart), which
 * kill() then leaves in place.
 */
export async function startLocalProcess(flags: string[] = [], env: Record<string, string> = {}, opts: { stateDir?: string } = {}): Promise<LocalProcess> {
  const stateDir = opts.stateDir ?? mkdtempSync(join(tmpdir(), 'nemu-proc-'));
  const args = [
    '--import',
    'tsx',
    'local/src/main.ts',
    '--state-dir',
    stateDir,
    '--webhook-port',
    '0',
    '--api-port',
    '0',
    '--fleet-port',
    '0',
    '--scheduler-port',
    '0',
    '--agent-metrics-port',
    '0',
    '--log-format',
    'json',
    '--log-level',
    'warn',
    ...flags,
  ];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let text = '';
  child.stdout!.on('data', (d: Buffer) => (text += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (text += d.toString()));
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  // 'close', not 'exit': only then has everything the process wrote been read.
  const gone = new Promise<void>((r) =>
    child.once('close', (code, signal) => {
      exit = { code, signal };
      r();
    }),
  );
  const find = (re: RegExp) => re.exec(text)?.[1];
  try {
    await until(
      'local mode to print its banner',
      () => {
        if (exit) throw new Error(`local mode exited (${JSON.stringify(exit)}) before it was up:\n${text}`);
        return text.includes('Ctrl-C stops everything');
      },
      60_000,
      50,
    );
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
  const peakRssMiB = () => {
    try {
      const kb = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1];
      return kb ? Number(kb) / 1024 : 0;
    } catch {
      return 0;
    }
  };
  return {
    child,
    stateDir,
    webhookUrl: find(/admission webhook\s+(\S+)/)!,
    apiUrl: find(/REST API\s+(\S+)/)!,
    fleetUrl: find(/fleet hub\s+(\S+)/)!,
    agentMetricsUrl: find(/agent metrics\s+(\S+)/)!,
    adminToken: readFileSync(join(stateDir, 'admin-token'), 'utf8').trim(),
    output: () => text,
    exited: () => exit,
    peakRssMiB,
    async kill() {
      if (!exit) {
        child.kill('SIGKILL');
        await gone;
      }
      if (!opts.stateDir) rmSync(stateDir, { recursive: true, force: true });
    },
  };
}
