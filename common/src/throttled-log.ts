/**
 * Errors on a hot path (every admission review) are logged once per interval and kind, with
 * the number of times they happened since the last line, instead of once per occurrence: an
 * outage that fails 300 reviews a second writes one line a second, not 300 stack traces.
 */
import type { Logger } from './log.ts';

export class ThrottledLog {
  private readonly kinds = new Map<string, { last: number; held: number }>();

  constructor(
    private readonly log: Logger,
    readonly intervalMs = 1000,
    private readonly now: () => number = () => performance.now(),
  ) {}

  warn(kind: string, fields: Record<string, unknown>, msg: string): void {
    this.emit('warn', kind, fields, msg);
  }

  error(kind: string, fields: Record<string, unknown>, msg: string): void {
    this.emit('error', kind, fields, msg);
  }

  /** Logs now, whatever the interval (a change of state), and starts the interval of `kind`. */
  errorNow(kind: string, fields: Record<string, unknown>, msg: string): void {
    this.emit('error', kind, fields, msg, true);
  }

  private emit(level: 'warn' | 'error', kind: string, fields: Record<string, unknown>, msg: string, now = false): void {
    const t = this.now();
    const seen = this.kinds.get(kind);
    if (!now && seen && t - seen.last < this.intervalMs) {
      seen.held++;
      return;
    }
    // `occurrences`: this one and those held back since the previous line of this kind
    this.log[level]({ ...fields, kind, occurrences: (seen?.held ?? 0) + 1 }, msg);
    this.kinds.set(kind, { last: t, held: 0 });
  }
}

/** An error's message, for a log line without its stack. */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
