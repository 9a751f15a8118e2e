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

export function createLineNormalizer(limit = 998): Transform {
  let lineLength = 0;
  let pendingCR = false;
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      const out = Buffer.allocUnsafe(chunk.length * 2 + 3 * Math.ceil(chunk.length / limit) + 4);
      let o = 0;
      for (let i = 0; i < chunk.length; i++) {
        const b = chunk[i];
        if (pendingCR) {
          pendingCR = false;
          out[o++] = CR;
          out[o++] = LF;
          lineLength = 0;
          if (b === LF) continue; // it was a proper CRLF
        }
        if (b === CR) {
          pendingCR = true;
        } else if (b === LF) {
          out[o++] = CR; // bare LF
          out[o++] = LF;
          lineLength = 0;
        } else {
          if (lineLength >= limit) {
            out[o++] = CR;
            out[o++] = LF;
            out[o++] = SP;
            lineLength = 1;
          }
          out[o++] = b;
          lineLength++;
        }
      }
      done(null, out.subarray(0, o));
    },
    flush(done) {
      done(null, pendingCR ? Buffer.from('\r\n') : null);
    },
  });
}
