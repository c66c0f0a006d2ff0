import type { ApiClient } from './client.ts';
import type { CliConfig } from './config.ts';

export interface CommandContext {
  /** Arguments after the command name (global flags removed). */
  args: string[];
  config: CliConfig;
  client: ApiClient;
  out(text: string): void;
  /** Progress and notes go to stderr, so stdout stays parseable. */
  err(text: string): void;
  /** All of standard input, as text (read when a command asks for it). */
  stdin(): Promise<string>;
}

export interface Command {
  name: string;
  summary: string;
  usage: string;
  run(ctx: CommandContext): Promise<number | void>;
}

/** Formats rows as an aligned text table. */
export function table(headers: string[], rows: Array<Array<string | number>>): string {
  const cells = [headers, ...rows.map((r) => r.map(String))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n');
}
