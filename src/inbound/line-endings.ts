/**
 * Bare CR and bare LF inside message content (after smtp-server found the real end of DATA).
 * RFC 5322 §2.3 allows CR and LF only together; Microsoft 365 refuses bare LF with 550 5.6.11, and a
 * relay that passes them on can be the "A" of an SMTP smuggling chain (research/smtp-robustness.md §2).
 *
 * A streaming Transform: 'normalize' turns each bare CR or bare LF into CRLF; 'reject' passes bytes
 * through unchanged and counts what it found (`bareFound`), so the caller can refuse the message at
 * the end of DATA. A CR at the end of one chunk is judged with the first byte of the next chunk,
 * so the result does not depend on how the input was split.
 */
import { Transform, type TransformCallback } from 'node:stream';

const CR = 0x0d;
const LF = 0x0a;
const CRLF = Buffer.from('\r\n');

export type BareLineEndingMode = 'normalize' | 'reject';

export class LineEndingFixer extends Transform {
  readonly mode: BareLineEndingMode;
  /** Bare CR or LF seen so far. */
  bareFound = 0;
  /** The previous chunk ended in CR, whose partner (LF or not) is in this chunk. */
  private pendingCR = false;

  constructor(mode: BareLineEndingMode) {
    super();
    this.mode = mode;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    done(null, this.fix(chunk));
  }

  override _flush(done: TransformCallback): void {
    if (this.pendingCR) {
      this.pendingCR = false;
      this.bareFound++;
      if (this.mode === 'normalize') return done(null, Buffer.from('\n'));
    }
    done();
  }

  private fix(chunk: Buffer): Buffer {
    const out: Buffer[] = [];
    let start = 0;
    let i = 0;
    if (this.pendingCR) {
      this.pendingCR = false;
      if (chunk[0] === LF) {
        i = 1;
      } else {
        this.bareFound++;
        if (this.mode === 'normalize') out.push(Buffer.from('\n'));
      }
    }
    // Bounded: i only grows.
    for (; i < chunk.length; i++) {
      const b = chunk[i];
      if (b !== CR && b !== LF) continue;
      if (b === CR) {
        if (i + 1 === chunk.length) {
          this.pendingCR = true;
          break;
        }
        if (chunk[i + 1] === LF) {
          i++;
          continue;
        }
      } else if (i > 0 ? chunk[i - 1] === CR : false) {
        continue;
      }
      // A bare CR (not followed by LF) or a bare LF (not preceded by CR).
      this.bareFound++;
      if (this.mode === 'normalize') {
        out.push(chunk.subarray(start, i), CRLF);
        start = i + 1;
      }
    }
    if (!out.length) return chunk;
    out.push(chunk.subarray(start));
    return Buffer.concat(out);
  }
}
