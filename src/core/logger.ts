/**
 * Logging: one structured line per SMTP session and per delivery attempt (pino JSON), shown as
 * readable text when stdout is a terminal. Secrets are redacted by key wherever they appear.
 */
import pino from 'pino';
import pinoPretty from 'pino-pretty';
import { isSingleExecutable } from './embedded.ts';

export type Logger = pino.Logger;

/** Keys never logged, whatever object they are in. */
export const REDACT_PATHS = [
  'password', 'pass', 'secret', 'clientSecret', 'token', 'accessToken', 'refreshToken', 'authorization',
  '*.password', '*.pass', '*.secret', '*.clientSecret', '*.token', '*.accessToken', '*.refreshToken', '*.authorization',
  '*.*.password', '*.*.pass', '*.*.secret', '*.*.clientSecret', '*.*.accessToken', '*.*.refreshToken',
];

export interface LoggerOptions {
  level?: string;
  /** 'pretty' for people, 'json' for machines; 'auto' picks pretty on a terminal. */
  format?: 'auto' | 'pretty' | 'json';
  /** Write here instead of stdout (tests). */
  destination?: NodeJS.WritableStream;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const level = opts.level ?? process.env.SMARTHOST_LOG_LEVEL ?? 'info';
  const format = opts.format ?? 'auto';
  const pretty = format === 'pretty' || (format === 'auto' && !opts.destination && process.stdout.isTTY === true);
  const base = { level, redact: { paths: REDACT_PATHS, censor: '[redacted]' }, base: undefined };
  if (pretty) {
    const prettyOptions = { translateTime: 'SYS:standard', ignore: 'pid,hostname', singleLine: true };
    // A transport runs pino-pretty in a worker loaded from node_modules, which a single executable
    // does not have (core/embedded.ts): there it formats on the main thread, fine for a terminal.
    if (isSingleExecutable()) return pino(base, pinoPretty({ ...prettyOptions, sync: true }));
    return pino({ ...base, transport: { target: 'pino-pretty', options: prettyOptions } });
  }
  return opts.destination ? pino(base, opts.destination) : pino(base);
}

/** A logger that drops everything (tests, library use). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
