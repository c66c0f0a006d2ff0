/** The CLI's configuration: where the controller's REST API is and how to authenticate. */
import { type ConfigOf, loadConfig, oneOf, string, url } from '#common/config.js';

export const cliSchema = {
  server: url(
    'http://127.0.0.1:8080',
    "The controller's REST API (local mode: http://127.0.0.1:8080; in a cluster https://…, e.g. after kubectl port-forward -n nemutator svc/nemutator-controller 8080).",
  ),
  caFile: string(
    '',
    "CA certificate (PEM) the https server must chain to. Empty: <stateDir>/tls/ca.crt when it exists, else the system's CAs. In a cluster: kubectl get configmap -n nemutator nemutator-ca -o jsonpath='{.data.ca\\.crt}'.",
  ),
  token: string(
    '',
    'Bearer token for the REST API (in a cluster: kubectl create token …). Empty: <stateDir>/admin-token when the server is on this machine (local mode).',
    { secret: true },
  ),
  stateDir: string('.nemutator', 'Local-mode state directory, where the admin token is read from.'),
  output: oneOf(['table', 'json'] as const, 'table', 'Output format.'),
};

export type CliConfig = ConfigOf<typeof cliSchema>;

const GLOBAL_FLAGS = new Set(['--server', '--token', '--state-dir', '--ca-file', '--output', '--config']);

/** Splits argv into the CLI's global flags and the command's own arguments. `-o json` is short for `--output json`. */
export function splitGlobalFlags(argv: readonly string[]): { global: string[]; rest: string[] } {
  const global: string[] = [];
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const name = a.split('=')[0]!;
    if (a === '--') {
      // After --: a program's own argv (nemutator run), never the CLI's flags.
      rest.push(...argv.slice(i));
      break;
    }
    if ((a === '-o' || a === '--output') && argv[i + 1] !== undefined && !['table', 'json'].includes(argv[i + 1]!) && argv[i + 1]!.includes('.')) {
      // `-o out.svg`: a file for the command (flame), not the table/json output format.
      rest.push(a, argv[++i]!);
    } else if (a === '-o' || a === '--output') {
      global.push('--output', argv[++i] ?? '');
    } else if (GLOBAL_FLAGS.has(name)) {
      global.push(a);
      if (!a.includes('=')) global.push(argv[++i] ?? '');
    } else if (a === '--help' || a === '-h') {
      rest.push(a);
    } else {
      rest.push(a);
    }
  }
  return { global, rest };
}

export function loadCliConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): { config: CliConfig; rest: string[] } {
  const { global, rest } = splitGlobalFlags(argv);
  const { config } = loadConfig(cliSchema, { program: 'nemutator', argv: global, env });
  return { config, rest };
}
