/**
 * The error catalogue: every error smarthost raises on purpose has a stable code, a message in
 * plain words and, where it applies, the SMTP reply, the failing command and the config file:line.
 * The CLI maps codes to exit codes once (src/cli/main.ts); the web layer maps them to HTTP statuses.
 */

export const ERROR_CODES = {
  SH_CONFIG_INVALID: 'The configuration file has an error',
  SH_CONFIG_READ: 'The configuration file could not be read',
  SH_CONFIG_NOT_FOUND: 'No configuration file was found',
  SH_SECRET_MISSING: 'A secret named in the configuration could not be read',
  SH_SPOOL_WRITE: 'The message could not be written durably to the spool',
  SH_SPOOL_CORRUPT: 'A spool file could not be read',
  SH_QUEUE_NOT_FOUND: 'No message with that queue id',
  SH_UPSTREAM_CONNECT: 'The upstream could not be reached',
  SH_UPSTREAM_AUTH: 'The upstream refused our credentials',
  SH_UPSTREAM_REJECT: 'The upstream refused the message',
  SH_TOKEN: 'An OAuth2 token could not be obtained',
  SH_PICKUP_FORMAT: 'A pickup file is not a message we can read',
  SH_USAGE: 'The command was not used correctly',
  SH_DNS: 'A DNS query failed',
  SH_INTERNAL: 'An internal error',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface ErrorDetails {
  /** SMTP reply code to give a client, when this error becomes a reply. */
  responseCode?: number;
  /** RFC 3463 enhanced status code, e.g. '5.7.1'. */
  enhanced?: string;
  /** The SMTP command that failed. */
  command?: string;
  /** Config file and 1-based line (and column), for config errors. */
  file?: string;
  line?: number;
  column?: number;
  cause?: unknown;
}

export class SmarthostError extends Error {
  readonly code: ErrorCode;
  readonly responseCode?: number;
  readonly enhanced?: string;
  readonly command?: string;
  readonly file?: string;
  readonly line?: number;
  readonly column?: number;

  constructor(code: ErrorCode, message: string, details: ErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'SmarthostError';
    this.code = code;
    this.responseCode = details.responseCode;
    this.enhanced = details.enhanced;
    this.command = details.command;
    this.file = details.file;
    this.line = details.line;
    this.column = details.column;
  }

  /** "file:line:col: message" for config errors, the message otherwise. */
  override toString(): string {
    if (this.file && !this.message.startsWith(this.file)) {
      const where = [this.file, this.line, this.column].filter((x) => x !== undefined).join(':');
      return `${where}: ${this.message}`;
    }
    return this.message;
  }
}

/** CLI exit codes: 0 ok, 1 problems found / operation failed, 2 usage or config error, 3 could not check. */
export function exitCodeFor(err: unknown): number {
  if (err instanceof SmarthostError) {
    if (err.code === 'SH_CONFIG_INVALID' || err.code === 'SH_CONFIG_READ' || err.code === 'SH_CONFIG_NOT_FOUND' || err.code === 'SH_USAGE' || err.code === 'SH_SECRET_MISSING') return 2;
    if (err.code === 'SH_DNS') return 3;
    return 1;
  }
  return 1;
}

/** Removes control characters from text that came from outside (upstream replies) before it goes into files, headers or HTML. */
export function sanitizeText(text: string, max = 2000): string {
  // eslint-disable-next-line no-control-regex
  const clean = text.replace(/\r?\n/g, ' ').replace(/[\u0000-\u001f\u007f]/g, '').trim();
  return clean.length > max ? `${clean.slice(0, max)}…` : clean;
}
