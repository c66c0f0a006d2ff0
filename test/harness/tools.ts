// System tools the harness runs (redis-server, prometheus, promtool, go, bpftrace): finding
// them, running them once, and keeping a long-lived one (a service) under control.
import { type ChildProcess, spawn, type SpawnOptions } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';

import { freePort } from './ports.ts';

/**
 * Absolute path of a system tool. A test that needs a tool fails loudly when it is missing:
 * it never skips and never passes silently, and the message says how to install it.
 */
export function requireTool(name: string, debPackage: string): string {
  const found = findTool(name);
  if (found === undefined) {
    throw new Error(`${name} not found: install it with \`apt-get install ${debPackage}\` (CI installs it in .ci/run)`);
  }
  return found;
}

export function findTool(name: string): string | undefined {
  const candidates = isAbsolute(name)
    ? [name]
    : [...(process.env.PATH ?? '').split(delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin'].filter((dir) => dir !== '').map((dir) => join(dir, name));
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here; try the next directory
    }
  }
  return undefined;
}

export interface ToolResult {
  stdout: string;
  stderr: string;
}

/** Runs a tool to completion; a non-zero exit throws with the command line and its output. */
export function runTool(path: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(path, args, {
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) {
        resolve({ stdout, stderr });
        return;
      }
      const how = signal === null ? `exit code ${code}` : `signal ${signal}`;
      reject(new Error(`${[path, ...args].join(' ')} failed (${how}):\n${stderr}${stdout}`));
    });
  });
}

/**
 * A long-running tool started for a test. Its output is kept (the last lines) so that a
 * start-up failure can say why; it is killed when the test process exits, so a crashed
 * worker does not leave servers behind.
 */
export class ServiceProcess {
  readonly child: ChildProcess;
  private output = '';
  private exited: Promise<void>;
  private done = false;

  constructor(
    readonly label: string,
    path: string,
    args: string[],
    opts: SpawnOptions = {},
  ) {
    this.child = spawn(path, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (d: string): void => {
      this.output = (this.output + d).slice(-8_000);
    };
    this.child.stdout?.setEncoding('utf8').on('data', keep);
    this.child.stderr?.setEncoding('utf8').on('data', keep);
    this.exited = new Promise((resolve) => {
      this.child.on('error', (err) => {
        keep(`\n${String(err)}\n`);
        this.done = true;
        resolve();
      });
      this.child.on('exit', () => {
        this.done = true;
        resolve();
      });
    });
    liveServices.add(this);
    void this.exited.then(() => liveServices.delete(this));
  }

  get running(): boolean {
    return !this.done;
  }

  /** The last lines the process printed, for error messages. */
  get recentOutput(): string {
    return this.output.trimEnd();
  }

  /** Polls `probe` until it resolves true; fails early if the process dies. */
  async waitUntil(probe: () => Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.done) {
        throw new Error(`${this.label} exited before ${what}:\n${this.recentOutput}`);
      }
      if (await probe().catch(() => false)) return;
      if (Date.now() > deadline) {
        await this.stop();
        throw new Error(`${this.label} not ${what} after ${timeoutMs} ms:\n${this.recentOutput}`);
      }
      await sleep(25);
    }
  }

  /** SIGTERM, then SIGKILL if it has not exited after `graceMs`. */
  async stop(graceMs = 5_000): Promise<void> {
    if (this.done) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

const liveServices = new Set<ServiceProcess>();
process.once('exit', () => {
  for (const service of liveServices) service.child.kill('SIGKILL');
});

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Starts a server on `fixedPort`, or on a free port: a freePort() port can be taken by
 * someone else before the server binds it, so on "address already in use" another port is
 * tried (five times at most). `cleanup` runs when the start fails for good.
 */
export async function startOnFreePort(
  fixedPort: number | undefined,
  launch: (port: number) => ServiceProcess,
  ready: (service: ServiceProcess, port: number) => Promise<void>,
  cleanup: () => Promise<void>,
): Promise<{ service: ServiceProcess; port: number }> {
  let port = fixedPort ?? (await freePort());
  for (let attempt = 1; ; attempt++) {
    const service = launch(port);
    try {
      await ready(service, port);
      return { service, port };
    } catch (err) {
      const taken = /address already in use/i.test(service.recentOutput);
      if (fixedPort !== undefined || !taken || attempt >= 5) {
        await cleanup();
        throw err;
      }
      port = await freePort();
    }
  }
}
