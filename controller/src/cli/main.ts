/**
 * `nemutator` — the command line (also installed as `kubectl-nemutator`, so
 * `kubectl nemutator …` works). It talks to the controller's REST API.
 */
import { help } from '#common/config.js';
import { isNemuError } from '#common/errors.js';
import { VERSION } from '#common/version.js';

import { ApiClient } from './client.ts';
import { commands } from './commands/index.ts';
import { cliSchema, loadCliConfig } from './config.ts';

function usage(): string {
  const width = Math.max('version'.length, ...commands.map((c) => c.name.length));
  return [
    `nemutator ${VERSION} — mutate the life of a pod instead of redeploying it`,
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    `  ${'version'.padEnd(width)}  Print the CLI version.`,
    '',
    "Run 'nemutator <command> --help' for a command's usage.",
    '',
    help(cliSchema, 'nemutator', '<command> [args] [global flags]').split('\n').slice(2).join('\n'),
  ].join('\n');
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export interface CliIo {
  out(s: string): void;
  err(s: string): void;
  stdin?(): Promise<string>;
}

export async function runCli(argv: string[], io: CliIo = { out: (s: string) => console.log(s), err: (s: string) => console.error(s) }): Promise<number> {
  try {
    const { config, rest } = loadCliConfig(argv);
    const [name, ...args] = rest;
    if (!name || name === 'help' || name === '--help' || name === '-h') {
      io.out(usage());
      return name ? 0 : 2;
    }
    if (name === 'version' || name === '--version') {
      io.out(VERSION);
      return 0;
    }
    const command = commands.find((c) => c.name === name);
    if (!command) {
      io.err(`nemutator: unknown command "${name}"; run 'nemutator --help' for the list`);
      return 2;
    }
    if (args.includes('--help') || args.includes('-h')) {
      io.out(`${command.summary}\n\nUsage: ${command.usage}`);
      return 0;
    }
    const code = await command.run({ args, config, client: ApiClient.fromConfig(config), out: io.out, err: io.err, stdin: io.stdin ?? readStdin });
    return code ?? 0;
  } catch (e) {
    io.err(isNemuError(e) ? `error: ${e.code}: ${e.message}` : `error: ${(e as Error).stack ?? String(e)}`);
    return 1;
  }
}
