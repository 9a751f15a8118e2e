/**
 * Bare CR and bare LF inside message content (after smtp-server found the real end of DATA).
 * RFC 5322 §2.3 allows CR and LF only together; Microsoft 365 refuses bare LF with 550 5.6.11, and a
 * relay that passes them on can be the "A" of an SMTP smuggling chain (research/smtp-robustness.md §2).
 *
 * A streaming Transform: 'normalize' turns each bare CR or bare LF into CRLF; 'reject' passes bytes
 * through unchanged and counts what it found (`bareFound`), so the caller can refuse the message at
 * the end of DATA. A CR at the end of one chunk is judged with the first byte of the next chunk,
 * so the result does not depend on how the input was split.
 *
 * NUL bytes, which RFC 5322 §2.3/§3.5 allows nowhere in a message (and 8BITMIME, RFC 6152 §3, not
 * either; BINARYMIME is not offered): counted (`nulFound`) for the caller to refuse, or removed with
 * `nulBytes: 'strip'` (Postfix's message_reject_characters / message_strip_characters). One native
 * indexOf(0) per chunk on the hot path.
 */
import { Transform, type TransformCallback } from 'node:stream';

const CR = 0x0d;
const LF = 0x0a;
const CRLF = Buffer.from('\r\n');

export type BareLineEndingMode = 'normalize' | 'reject';
export type NulByteMode = 'reject' | 'strip';

export class LineEndingFixer extends Transform {
  readonly mode: BareLineEndingMode;
  readonly nulBytes: NulByteMode;
  /** Bare CR or LF seen so far. */
  bareFound = 0;
  /** NUL bytes seen so far (removed under 'strip'). */
  nulFound = 0;
  /** The previous chunk ended in CR, whose partner (LF or not) is in this chunk. */
  private pendingCR = false;

  constructor(mode: BareLineEndingMode, nulBytes: NulByteMode = 'reject') {
    super();
    this.mode = mode;
    this.nulBytes = nulBytes;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    const fixed = this.fix(chunk);
    done(null, fixed.indexOf(0) < 0 ? fixed : this.nul(fixed));
  }

  /** Counts the NUL bytes of a chunk that has some, and removes them under 'strip'. */
  private nul(chunk: Buffer): Buffer {
    const out: Buffer[] = [];
    let start = 0;
    for (let at = chunk.indexOf(0); at >= 0; at = chunk.indexOf(0, start)) {
      this.nulFound++;
      out.push(chunk.subarray(start, at));
      start = at + 1;
    }
    if (this.nulBytes === 'reject') return chunk;
    out.push(chunk.subarray(start));
    return Buffer.concat(out);
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
    // Jump from line end to line end with indexOf (native) rather than visiting every byte.
    // A CR followed by LF is consumed with its LF, so any LF found on its own is bare.
    let cr = chunk.indexOf(CR, i);
    let lf = chunk.indexOf(LF, i);
    while (cr >= 0 || lf >= 0) {
      const pos = cr < 0 ? lf : lf < 0 ? cr : Math.min(cr, lf);
      if (pos === cr && pos + 1 === chunk.length) {
        this.pendingCR = true;
        break;
      }
      if (pos === cr && chunk[pos + 1] === LF) {
        i = pos + 2;
      } else {
        // a bare CR or a bare LF: counted, and replaced by CRLF when normalising
        i = pos + 1;
        this.bareFound++;
        if (this.mode === 'normalize') {
          out.push(chunk.subarray(start, pos), CRLF);
          start = i;
        }
      }
      if (cr >= 0 && cr < i) cr = chunk.indexOf(CR, i);
      if (lf >= 0 && lf < i) lf = chunk.indexOf(LF, i);
    }
    if (!out.length) return chunk;
    out.push(chunk.subarray(start));
    return Buffer.concat(out);
  }
}
