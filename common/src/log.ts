/**
 * Logging: pino, JSON by default, a pretty form for local mode. Anything that may hold a
 * secret is redacted before it is written: tokens, passwords, Authorization headers and
 * the `value` fields that secret payloads use. Callers still must never log a secret on
 * purpose; redaction is the safety net, not the plan.
 */
import { createRequire } from 'node:module';
import { type DestinationStream, type Logger, type LoggerOptions, pino } from 'pino';
import type PinoPretty from 'pino-pretty';

// pino-pretty is loaded only when asked for (local mode): the agent on every node never
// pays its ~2.5 MiB.
const require = createRequire(import.meta.url);

export type { Logger } from 'pino';

/** Paths pino replaces with "[redacted]". pino's wildcard matches one level. */
export const REDACT_PATHS = [
  'token',
  '*.token',
  '*.*.token',
  'password',
  '*.password',
  'secret',
  '*.secret',
  'value',
  '*.value',
  '*.*.value',
  'values',
  '*.values',
  'env',
  '*.env',
  'authorization',
  'Authorization',
  '*.authorization',
  '*.Authorization',
  'headers.authorization',
  'req.headers.authorization',
  'req.headers.cookie',
  'request.headers.authorization',
  '*.headers.authorization',
  'clientToken',
  '*.clientToken',
  'client_token',
  '*.client_token',
  '*.auth.client_token',
  'jwt',
  '*.jwt',
  'key',
  'privateKey',
  '*.privateKey',
  'adminToken',
  '*.adminToken',
];

export interface LogOptions {
  level?: string;
  /** Human-readable output (local mode). */
  pretty?: boolean;
  name?: string;
  /** Destination override (tests capture the output to check redaction). */
  destination?: DestinationStream;
}

export function createLogger(opts: LogOptions = {}): Logger {
  const options: LoggerOptions = {
    level: opts.level ?? 'info',
    base: opts.name ? { name: opts.name } : {},
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
    // Errors keep their stable code.
    serializers: { err: pino.stdSerializers.err },
  };
  if (opts.destination) return pino(options, opts.destination);
  if (opts.pretty) {
    const pretty = require('pino-pretty') as typeof PinoPretty;
    return pino(options, pretty({ colorize: process.stdout.isTTY, translateTime: 'HH:MM:ss', ignore: 'pid,hostname', sync: true }));
  }
  return pino(options);
}

/** A logger that writes nothing (tests and library defaults). */
export const silentLogger: Logger = pino({ level: 'silent' });
