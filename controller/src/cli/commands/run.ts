/**
 * `nemutator run --env NAME=vault:… [--file NAME=vault:…] [--rotate-signal SIG] -- PROGRAM ARGS`
 * (local mode): starts a program the way an injected pod's container starts. Local mode
 * registers a pod declaring those references and signs it a token; the program runs in a
 * cgroup shaped like that pod's container, through the `nemu-exec` launcher, which fetches the
 * values over the agent's socket (identified by the kernel and the token), execs the program
 * with them, and follows rotations (files rewritten, the signal sent). Needs root for the cgroup.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';

import { ErrorCodes, isNemuError, NemuError } from '#common/errors.js';
import type { LocalPodTicket } from '#common/local-pods.js';

import { ControllerErrorCodes } from '../../errors.ts';
import type { Command, CommandContext } from '../command.ts';
import { findLauncher } from '../run/launcher.ts';
import { createPodCgroup, type PodCgroup } from '../run/pod-cgroup.ts';

const USAGE = [
  'nemutator run [--env NAME=vault:<mount>/<path>#<key>]... [--file NAME=vault:…]... [--rotate-signal SIGHUP] [--name NAME] [--launcher PATH] -- PROGRAM [ARGS...]',
  '  Local mode: runs PROGRAM as a pod would run with those secrets. --env sets a variable, --file writes',
  '  $NEMUTATOR_SECRETS_DIR/NAME (rewritten on rotation, then --rotate-signal is sent). Needs root (a cgroup per run).',
].join('\n');

export interface RunOptions {
  env: Record<string, string>;
  files: Record<string, string>;
  rotateSignal?: string;
  name?: string;
  launcher: string;
  argv: string[];
}

/** The options before `--` and the program after it. */
export function parseRunArgs(args: string[]): RunOptions {
  const o: RunOptions = { env: {}, files: {}, launcher: '', argv: [] };
  const dash = args.indexOf('--');
  if (dash < 0 || dash === args.length - 1) throw new NemuError(ErrorCodes.BAD_REQUEST, `run needs the program after --; usage: ${USAGE}`);
  o.argv = args.slice(dash + 1);
  const flags = args.slice(0, dash);
  for (let i = 0; i < flags.length; i++) {
    const [flag, inline] =
      flags[i]!.includes('=') && flags[i]!.startsWith('--')
        ? [flags[i]!.slice(0, flags[i]!.indexOf('=')), flags[i]!.slice(flags[i]!.indexOf('=') + 1)]
        : [flags[i]!, undefined];
    const value = inline ?? flags[++i];
    if (value === undefined) throw new NemuError(ErrorCodes.BAD_REQUEST, `${flag} needs a value; usage: ${USAGE}`);
    if (flag === '--env' || flag === '--file') {
      const eq = value.indexOf('=');
      if (eq <= 0 || !value.slice(eq + 1).startsWith('vault:'))
        throw new NemuError(ErrorCodes.BAD_REQUEST, `${flag} takes NAME=vault:<mount>/<path>#<key> (a reference, never a value)`);
      (flag === '--env' ? o.env : o.files)[value.slice(0, eq)] = value.slice(eq + 1);
    } else if (flag === '--rotate-signal') o.rotateSignal = value;
    else if (flag === '--name') o.name = value;
    else if (flag === '--launcher') o.launcher = value;
    else throw new NemuError(ErrorCodes.BAD_REQUEST, `unknown flag ${flag}; usage: ${USAGE}`);
  }
  return o;
}

type Ticket = LocalPodTicket;

async function register(ctx: CommandContext, o: RunOptions): Promise<Ticket> {
  const name =
    o.name ??
    (basename(o.argv[0]!)
      .toLowerCase()
      .replace(/[^a-z0-9-]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 42) ||
      'app');
  try {
    return await ctx.client.json<Ticket>('POST', '/api/v1/local/pods', {
      name,
      env: o.env,
      files: o.files,
      ...(o.rotateSignal ? { rotateSignal: o.rotateSignal } : {}),
    });
  } catch (e) {
    if (isNemuError(e) && e.status === 404)
      throw new NemuError(
        ErrorCodes.NOT_FOUND,
        `the controller at ${ctx.config.server} has no local pods: nemutator run works with local mode (npm start) only`,
        { status: 404 },
      );
    throw e;
  }
}

/** Runs argv in the cgroup through the launcher; resolves with its exit code (128 + signal when killed). */
function runInCgroup(cg: PodCgroup, launcher: string, argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  // The shell moves itself into the cgroup, then execs: the launcher is in it from its first instruction.
  const child = spawn('/bin/sh', ['-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', cg.dir, launcher, '--', ...argv], { stdio: 'inherit', env });
  // Ctrl-C reaches the program from the terminal; a SIGTERM or SIGHUP sent to this CLI is passed on.
  const forward = (signal: NodeJS.Signals) => child.kill(signal);
  const ignore = () => {};
  process.on('SIGTERM', forward).on('SIGHUP', forward).on('SIGINT', ignore);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      process.off('SIGTERM', forward).off('SIGHUP', forward).off('SIGINT', ignore);
      resolve(code ?? 128 + (signal ? (({ SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 } as Record<string, number>)[signal] ?? 0) : 0));
    });
  });
}

/** The parent's env without the CLI's own NEMUTATOR_* settings (NEMUTATOR_TOKEN is an admin token), plus the launcher's. */
function podEnv(ticket: Ticket, tokenFile: string, secretsDir: string): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('NEMUTATOR_')));
  return {
    ...env,
    NEMUTATOR_SOCKET: ticket.socketPath,
    NEMUTATOR_TOKEN_FILE: tokenFile,
    NEMUTATOR_CONTAINER: ticket.container,
    NEMUTATOR_SECRETS_DIR: secretsDir,
  };
}

export const runCommand: Command = {
  name: 'run',
  summary: 'Local mode: run a program with secrets from the agent, as an injected pod would (needs root).',
  usage: USAGE,
  async run(ctx) {
    const o = parseRunArgs(ctx.args);
    if (process.getuid?.() !== 0) {
      throw new NemuError(
        ControllerErrorCodes.RUN_NEEDS_ROOT,
        "nemutator run creates a cgroup for the program (the agent identifies it by the kernel, as a pod's container), and that needs root: run it with sudo (sudo -E npx nemutator run …)",
      );
    }
    const launcher = findLauncher(o.launcher, ctx.config.stateDir);
    const ticket = await register(ctx, o);
    // Memory-backed like the pod's emptyDir when /dev/shm is there; private to this run.
    const dir = await mkdtemp(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'nemutator-run-'));
    let cg: PodCgroup | undefined;
    try {
      const tokenFile = join(dir, 'token');
      await writeFile(tokenFile, ticket.token, { mode: 0o600 });
      cg = await createPodCgroup(ticket.cgroupRoot, ticket.uid, ticket.containerId);
      const secretsDir = join(dir, 'secrets');
      ctx.err(
        `nemutator run: pod ${ticket.namespace}/${ticket.name} (uid ${ticket.uid}), container ${ticket.container}${Object.keys(o.files).length > 0 ? `; files in ${secretsDir}` : ''}`,
      );
      return await runInCgroup(cg, launcher, o.argv, podEnv(ticket, tokenFile, secretsDir));
    } finally {
      await cg?.remove().catch(() => undefined);
      await ctx.client.json('DELETE', `/api/v1/local/pods/${ticket.uid}`).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    }
  },
};
