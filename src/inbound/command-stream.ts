/**
 * The command parser of smtp-server, with one change: a command line longer than the limit is
 * answered "500 5.5.2" and skipped, and the session goes on (RFC 5321 §4.5.3.1.4, Postfix's
 * "500 5.5.2 Error: command too long"). smtp-server 3.21 answers such a line with 421 and closes
 * the connection, and no option changes that (research/smtp-robustness.md §4.2 item 1).
 *
 * How: input in command mode is fed to the library parser one line at a time, but only when a
 * line could be too long (fast path otherwise). An over-long complete line is dropped and answered;
 * an over-long partial line is dropped and the rest of it is skipped up to its newline. Data mode
 * (message content, where long lines are legal) is never touched.
 * Guarantees: replies keep command order (each piece is handed on only after the previous one's
 * commands were answered). On failure the library's own error path (421 + close) still applies.
 */
import { SMTPStream } from 'smtp-server/lib/smtp-stream.js';

type WriteCallback = (err?: Error | null) => void;

export class LineLimitedStream extends SMTPStream {
  /** Called once for each over-long command line; sends the 500 reply. */
  onLineTooLong: () => void = () => {};
  /** True while the tail of an over-long line is being skipped (its newline not seen yet). */
  private skipping = false;

  override _write(chunk: Buffer, encoding: BufferEncoding | 'buffer', next: WriteCallback): void {
    if (!chunk || !chunk.length || this._dataMode || this.isClosed) return super._write(chunk, encoding, next);
    // Fast path: no line in remainder + chunk can exceed the limit.
    if (!this.skipping && this._remainder.length + chunk.length <= this._maxCommandLength) return super._write(chunk, encoding, next);
    this.feedLines(chunk, next);
  }

  /** Hands the chunk on line by line, dropping over-long lines. */
  private feedLines(chunk: Buffer, next: WriteCallback): void {
    let rest = chunk;
    const step = (err?: Error | null): void => {
      if (err) return next(err);
      // Bounded: every round consumes at least one byte of rest or ends.
      while (rest.length) {
        if (this.isClosed) return next();
        if (this._dataMode) {
          const data = rest;
          rest = Buffer.alloc(0);
          return super._write(data, 'buffer', next);
        }
        const nl = rest.indexOf(0x0a);
        if (this.skipping) {
          if (nl < 0) return next();
          this.skipping = false;
          rest = rest.subarray(nl + 1);
          this.onLineTooLong();
          continue;
        }
        if (nl < 0) {
          if (this._remainder.length + rest.length > this._maxCommandLength) {
            this._remainder = '';
            this.skipping = true;
            return next();
          }
          const piece = rest;
          rest = Buffer.alloc(0);
          return super._write(piece, 'buffer', next);
        }
        const lineLength = this._remainder.length + nl - (nl > 0 && rest[nl - 1] === 0x0d ? 1 : 0);
        if (lineLength > this._maxCommandLength) {
          this._remainder = '';
          rest = rest.subarray(nl + 1);
          this.onLineTooLong();
          continue;
        }
        const piece = rest.subarray(0, nl + 1);
        rest = rest.subarray(nl + 1);
        return super._write(piece, 'buffer', step);
      }
      next();
    };
    step();
  }
}
