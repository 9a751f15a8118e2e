/**
 * Makes a raw message safe to forward over SMTP, as Postfix does with smtp_line_length_limit and
 * cleanup_replace_stray_cr_lf:
 * - every bare CR and bare LF becomes CRLF (a bare line end is never forwarded: SMTP smuggling);
 * - a line longer than 998 octets (RFC 5321 §4.5.3.1.6) is folded by inserting CRLF SPACE, so the
 *   upstream never truncates or refuses it.
 * Streaming, one chunk at a time; state is carried across chunk boundaries. Never fails.
 */
import { Transform } from 'node:stream';

const CR = 13;
const LF = 10;
const SP = 32;

const CRLF = Buffer.from('\r\n');
const FOLD = Buffer.from('\r\n ');

export function createLineNormalizer(limit = 998): Transform {
  let lineLength = 0;
  let pendingCR = false;
  return new Transform({
    // Jumps from line end to line end with indexOf (native) instead of visiting every byte in JS,
    // and hands a chunk that needs no change on as it is (no copy): that is nearly every chunk.
    transform(chunk: Buffer, _enc, done) {
      const parts: Buffer[] = [];
      let start = 0; // first byte not yet handed on
      let i = 0;
      if (pendingCR) {
        pendingCR = false;
        parts.push(CRLF);
        lineLength = 0;
        if (chunk[0] === LF) i = start = 1; // it was a proper CRLF
      }
      let cr = chunk.indexOf(CR, i);
      let lf = chunk.indexOf(LF, i);
      for (;;) {
        const end = cr < 0 ? (lf < 0 ? chunk.length : lf) : lf < 0 ? cr : Math.min(cr, lf);
        // the line's content from i to end: fold where it would pass the limit
        let pos = i;
        while (pos < end && lineLength + (end - pos) > limit) {
          const cut = pos + Math.max(limit - lineLength, 0);
          parts.push(chunk.subarray(start, cut), FOLD);
          start = cut;
          // the byte after a fold always goes on the new line, after its SP
          pos = cut + 1;
          lineLength = 2;
        }
        lineLength += end - pos;
        if (end === chunk.length) break;
        if (chunk[end] === CR) {
          if (end + 1 === chunk.length) {
            // judged with the next chunk's first byte
            parts.push(chunk.subarray(start, end));
            start = chunk.length;
            pendingCR = true;
            break;
          }
          if (chunk[end + 1] === LF) {
            i = end + 2; // a proper CRLF stays where it is
          } else {
            parts.push(chunk.subarray(start, end), CRLF); // bare CR
            start = i = end + 1;
          }
        } else {
          parts.push(chunk.subarray(start, end), CRLF); // bare LF
          start = i = end + 1;
        }
        lineLength = 0;
        if (cr >= 0 && cr < i) cr = chunk.indexOf(CR, i);
        if (lf >= 0 && lf < i) lf = chunk.indexOf(LF, i);
      }
      if (parts.length === 0) return done(null, chunk);
      if (start < chunk.length) parts.push(chunk.subarray(start));
      done(null, Buffer.concat(parts));
    },
    flush(done) {
      done(null, pendingCR ? Buffer.from('\r\n') : null);
    },
  });
}
