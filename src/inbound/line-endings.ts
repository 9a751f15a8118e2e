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
  /**
   * Octets of the longest line so far, line end not counted (the lines as they leave: a bare CR or
   * LF ends a line as the CRLF that replaces it does). With no bare line end and nothing over 998
   * (RFC 5321 §4.5.3.1.6), the content can go upstream without the transport's own line pass.
   */
  longestLine = 0;
  /** The previous chunk ended in CR, whose partner (LF or not) is in this chunk. */
  private pendingCR = false;
  /** Octets of the line still open at the end of the previous chunk. */
  private openLine = 0;

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
    if (this.openLine > this.longestLine) this.longestLine = this.openLine; // a last line without its end
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
    /** Where the line being read started in this chunk (its octets before the chunk: openLine). */
    let lineStart = i;
    while (cr >= 0 || lf >= 0) {
      const pos = cr < 0 ? lf : lf < 0 ? cr : Math.min(cr, lf);
      // the line ends at pos (a CR at the very end of the chunk too, whatever follows it)
      const length = this.openLine + pos - lineStart;
      if (length > this.longestLine) this.longestLine = length;
      this.openLine = 0;
      if (pos === cr && pos + 1 === chunk.length) {
        this.pendingCR = true;
        lineStart = chunk.length;
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
      lineStart = i;
      if (cr >= 0 && cr < i) cr = chunk.indexOf(CR, i);
      if (lf >= 0 && lf < i) lf = chunk.indexOf(LF, i);
    }
    this.openLine += chunk.length - lineStart;
    if (!out.length) return chunk;
    out.push(chunk.subarray(start));
    return Buffer.concat(out);
  }
}

/** RFC 5321 §4.5.3.1.6: 998 octets per line, CRLF not counted. */
export const MAX_LINE_OCTETS = 998;

/**
 * Whether a small block (a header block the relay wrote) has CRLF line ends only and no line over
 * MAX_LINE_OCTETS. Visits every line: for header-sized blocks, not for message bodies (the fixer
 * measures those on the way in).
 */
export function wireSafeBlock(block: Buffer): boolean {
  let start = 0;
  for (let lf = block.indexOf(LF); lf >= 0; lf = block.indexOf(LF, start)) {
    if (lf === 0 || block[lf - 1] !== CR || lf - 1 - start > MAX_LINE_OCTETS) return false;
    const cr = block.indexOf(CR, start);
    if (cr !== lf - 1) return false; // a CR inside the line
    start = lf + 1;
  }
  const rest = block.subarray(start);
  return rest.indexOf(CR) < 0 && rest.length <= MAX_LINE_OCTETS;
}
