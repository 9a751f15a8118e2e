/**
 * Logging: one structured line per SMTP session and per delivery attempt. Formats:
 *   pretty  coloured, for a terminal (the default there);
 *   text    one plain line per event, `2026-12-07T18:10:19.123Z INFO message {"fields":…}`, the
 *           default when stdout is not a terminal (a service manager's log, a file); under systemd's
 *           journal each line starts with its syslog priority (`<6>`), which journald turns into
 *           the entry's priority (`journalctl -p warning` works);
 *   json    pino's JSON lines, for log shippers.
 * Secrets are redacted by key wherever they appear.
 */
import { fstatSync } from 'node:fs';
import pino from 'pino';
import pinoPretty from 'pino-pretty';
import { isSingleExecutable } from './embedded.ts';
import { REDACT_PATHS } from './redact.ts';

export type Logger = pino.Logger;

export { REDACT_PATHS };

export interface LoggerOptions {
  level?: string;
  /** 'pretty' and 'text' for people, 'json' for machines; 'auto' picks pretty on a terminal, text otherwise. */
  format?: 'auto' | 'pretty' | 'text' | 'json';
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
  const out = opts.destination ?? pino.destination({ dest: 1, sync: true });
  if (format === 'json') return pino(base, out);
  const journal = !opts.destination && stdoutIsJournal();
  return pino({ ...base, timestamp: pino.stdTimeFunctions.isoTime }, { write: (line: string) => out.write(textLine(line, journal)) });
}

/** RFC 5424 severities for pino's levels, as journald reads them from a `<N>` line prefix (sd-daemon(3)). */
const SYSLOG_PRIORITY: Record<number, number> = { 10: 7, 20: 7, 30: 6, 40: 4, 50: 3, 60: 2 };

/** One pino JSON line as `TIME LEVEL message {other fields}`, still one line (newlines in the message become spaces). */
export function textLine(json: string, journal = false): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.endsWith('\n') ? json : `${json}\n`;
  }
  const { level, time, msg, ...rest } = rec;
  const n = typeof level === 'number' ? level : 30;
  const name = (pino.levels.labels[n] ?? String(level)).toUpperCase();
  const text = String(msg ?? '').replace(/\s*[\r\n]+\s*/g, ' ');
  const fields = Object.keys(rest).length ? ` ${JSON.stringify(rest)}` : '';
  return `${journal ? `<${SYSLOG_PRIORITY[n] ?? 6}>` : ''}${String(time ?? new Date().toISOString())} ${name.padEnd(5)} ${text}${fields}\n`;
}

/**
 * True when stdout is connected to systemd's journal: systemd sets JOURNAL_STREAM to the
 * "device:inode" of that stream, and it only counts while stdout is still that stream
 * (systemd.exec(5), "$JOURNAL_STREAM").
 */
export function stdoutIsJournal(env: NodeJS.ProcessEnv = process.env, fd = 1): boolean {
  const m = /^(\d+):(\d+)$/.exec(env.JOURNAL_STREAM ?? '');
  if (!m) return false;
  try {
    const st = fstatSync(fd, { bigint: true });
    return st.dev === BigInt(m[1]) && st.ino === BigInt(m[2]);
  } catch {
    return false;
  }
}

/** A logger that drops everything (tests, library use). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
