/**
 * The command parser of smtp-server, with one change: a command line longer than the limit is
 * answered "500 5.5.2" and skipped, and the session goes on (RFC 5321 §4.5.3.1.4, Postfix's
 * "500 5.5.2 Error: command too long"). smtp-server 3.21 answers such a line with 421 and closes
 * the connection, and no option changes that (research/smtp-robustness.md §4.2 item 1).
 *
 * How: when a line could be too long (fast path otherwise), input in command mode is fed to the
 * library parser in runs of acceptable lines, cut at each over-long one. An over-long complete line is dropped and answered;
 * an over-long partial line is dropped and the rest of it is skipped up to its newline. Data mode
 * (message content, where long lines are legal) is never touched.
 * Guarantees: replies keep command order (each piece is handed on only after the previous one's
 * commands were answered). On failure the library's own error path (421 + close) still applies.
 */
import { SMTPStream } from 'smtp-server/lib/smtp-stream.js';
import { fastDataFeedInUse, fastFeedDataStream } from './fast-data-feed.ts';

type WriteCallback = (err?: Error | null) => void;

const EMPTY = Buffer.alloc(0);

export class LineLimitedStream extends SMTPStream {
  /** Called once for each over-long command line; sends the 500 reply. */
  onLineTooLong: () => void = () => {};
  /** True while the tail of an over-long line is being skipped (its newline not seen yet). */
  private skipping = false;

  /** Message content: the library's rules, found with indexOf instead of a loop over every byte (fast-data-feed.ts). */
  override _feedDataStream(chunk: Buffer, done: WriteCallback): void {
    if (fastDataFeedInUse()) fastFeedDataStream.call(this, chunk, done);
    else super._feedDataStream(chunk, done);
  }

  override _write(chunk: Buffer, encoding: BufferEncoding | 'buffer', next: WriteCallback): void {
    if (!chunk || !chunk.length || this._dataMode || this.isClosed) return super._write(chunk, encoding, next);
    // Fast path: no line in remainder + chunk can exceed the limit.
    if (!this.skipping && this._remainder.length + chunk.length <= this._maxCommandLength) return super._write(chunk, encoding, next);
    this.feedLines(chunk, next);
  }

  /**
   * Hands the chunk on, dropping over-long lines: each run of acceptable complete lines goes to the
   * library in one piece (its own loop answers them, yielding to the event loop every 100
   * commands), so the work per chunk is a few calls, not one per line. A callback that comes back
   * synchronously resumes the loop below instead of recursing: handing on one line at a time with
   * a recursive callback overflowed the call stack at about 2,000 pipelined commands.
   */
  private feedLines(chunk: Buffer, next: WriteCallback): void {
    let rest = chunk;
    /** step() is running; a synchronous callback only sets `resumed`. */
    let running = false;
    let resumed = false;
    const step = (err?: Error | null): void => {
      if (err) return next(err);
      if (running) {
        resumed = true;
        return;
      }
      running = true;
      try {
        // Bounded: every round consumes at least one byte of rest or returns.
        while (rest.length) {
          if (this.isClosed) return next();
          if (this._dataMode) {
            const data = rest;
            rest = EMPTY;
            return super._write(data, 'buffer', next);
          }
          if (this.skipping) {
            const nl = rest.indexOf(0x0a);
            if (nl < 0) return next();
            this.skipping = false;
            rest = rest.subarray(nl + 1);
            this.onLineTooLong();
            continue;
          }
          // The acceptable complete lines at the start of rest end at `end`; `over` is the newline
          // of the first over-long line after them, if any.
          let end = 0;
          let over = -1;
          for (let nl = rest.indexOf(0x0a); nl >= 0; nl = rest.indexOf(0x0a, end)) {
            const length = (end === 0 ? this._remainder.length : 0) + nl - end - (nl > end && rest[nl - 1] === 0x0d ? 1 : 0);
            if (length > this._maxCommandLength) {
              over = nl;
              break;
            }
            end = nl + 1;
          }
          if (end > 0) {
            const piece = rest.subarray(0, end);
            rest = rest.subarray(end);
            resumed = false;
            super._write(piece, 'buffer', step);
            if (!resumed) return; // answered later: step() runs again then
            continue;
          }
          if (over >= 0) {
            this._remainder = '';
            rest = rest.subarray(over + 1);
            this.onLineTooLong();
            continue;
          }
          // A partial line only.
          if (this._remainder.length + rest.length > this._maxCommandLength) {
            this._remainder = '';
            this.skipping = true;
            return next();
          }
          const piece = rest;
          rest = EMPTY;
          return super._write(piece, 'buffer', next);
        }
        next();
      } finally {
        running = false;
      }
    };
    step();
  }
}
