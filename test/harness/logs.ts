// A logger that keeps every line it writes, for tests that look for what must never be logged
// (tokens, secret values) or count how often something is.
import { Writable } from 'node:stream';

import { createLogger, type Logger } from '#common/log.js';

/** A debug-level logger named `name` whose lines (JSON text) are pushed onto `into`. */
export function capturingLogger(name: string, into: string[], level: 'trace' | 'debug' = 'debug'): Logger {
  return createLogger({
    level,
    name,
    destination: new Writable({
      write(chunk, _enc, cb) {
        into.push(...String(chunk).split('\n').filter(Boolean));
        cb();
      },
    }),
  });
}
