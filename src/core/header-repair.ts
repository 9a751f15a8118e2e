/**
 * Header repairs for messages from old devices, before they reach Microsoft 365 (docs/devices.md).
 * Shared by the SMTP intake and the pickup folder, so both paths repair alike:
 *   - a missing Date: or Message-ID: is added (RFC 5322 §3.6 requires Date and recommends
 *     Message-ID; RFC 6409 §8 lets a submission server add both; Mono's and old .NET's SmtpClient
 *     send no Message-ID, and Gmail refuses mail without one);
 *   - a Bcc: header is removed, as Postfix's cleanup does: its recipients are in the envelope, and
 *     the Graph transport rebuilds Bcc from the envelope (transports/graph-mime.ts);
 *   - a From display name with an unquoted special (`printer@x.com <printer@x.com>`) is quoted:
 *     Exchange/Graph otherwise reads the name as the address and refuses a send-as
 *     (SMTP2Graph issue #28, ErrorSendAsDenied);
 *   - raw 8-bit text in Subject: or a From display name is encoded as RFC 2047 words when the
 *     message is not SMTPUTF8 (without SMTPUTF8, RFC 6532 headers are not allowed, and an upstream
 *     reads them in whatever charset it guesses): UTF-8 when the bytes are valid UTF-8, else
 *     windows-1252, the charset Western devices write.
 * Nothing else is altered; a message needing none of this comes back as the same Buffer. A message
 * with a DKIM-Signature keeps its From and Subject untouched (the signature covers them).
 * Only the header block is looked at (the caller bounds it). Pure; never throws.
 *
 * Done at accept, not at delivery: the queue file then holds what is sent and each repair is
 * recorded once, with the message's history. The 8-bit decision depends on SMTPUTF8, which is
 * known at accept from the client's MAIL FROM: a message declared SMTPUTF8 keeps its UTF-8
 * headers (and needs an SMTPUTF8 upstream, as Microsoft 365 is); an undeclared one is encoded
 * whatever the upstream, since sending undeclared 8-bit headers is never right.
 */

export interface RepairOptions {
  /** The client declared SMTPUTF8: raw UTF-8 headers are legal and left alone. */
  smtputf8?: boolean;
  /** Domain for an added Message-ID (the relay's host name). */
  hostname: string;
  now: Date;
  /** A random token for an added Message-ID. */
  unique: string;
}

export interface RepairResult {
  /** The header block, repaired (the same Buffer when nothing changed). */
  block: Buffer;
  /** What was changed, in words, for the log and the message's history. */
  repairs: string[];
}

/** RFC 5322 date-time: "Wed, 25 Nov 2026 17:45:01 +0000". */
function rfc5322Date(d: Date): string {
  return d.toUTCString().replace(/GMT$/, '+0000');
}

const EIGHT_BIT = /[\x80-\xff]/;
const SPECIALS = /[@,;:<>[\]\\()]/;

/** One header field: its name (lower-case) and raw text including its line ends. */
interface Field { name: string; raw: string }

function splitFields(block: string): { fields: Field[]; tail: string; eol: string } {
  // tail: the empty line ending the block (or '' when the block has none)
  let body = block;
  let tail = '';
  const m = /(\r?\n)(\r?\n)$/.exec(block);
  if (m) { body = block.slice(0, block.length - m[2].length); tail = m[2]; }
  const eol = /\r\n/.test(block) ? '\r\n' : '\n';
  const fields: Field[] = [];
  for (const line of body.split(/(?<=\n)/)) {
    if ((line[0] === ' ' || line[0] === '\t') && fields.length) { fields[fields.length - 1].raw += line; continue; }
    const colon = line.indexOf(':');
    fields.push({ name: colon > 0 ? line.slice(0, colon).trim().toLowerCase() : '', raw: line });
  }
  return { fields, tail, eol };
}

function isUtf8(bytes: Buffer): boolean {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    return true;
  } catch {
    return false;
  }
}

/** RFC 2047 B-encoded words for text (latin1 string holding raw bytes), each at most 75 chars. */
export function encodeWords(raw: string, eol: string): string {
  const bytes = Buffer.from(raw, 'latin1');
  const utf8 = isUtf8(bytes);
  const charset = utf8 ? 'UTF-8' : 'windows-1252';
  const words: string[] = [];
  let start = 0;
  while (start < bytes.length) {
    let end = Math.min(bytes.length, start + 45); // 45 bytes → 60 base64 chars, 72 with the wrapper
    // never split a UTF-8 character: back off continuation bytes (10xxxxxx)
    if (utf8) while (end < bytes.length && end > start + 1 && (bytes[end] & 0xc0) === 0x80) end--;
    words.push(`=?${charset}?B?${bytes.subarray(start, end).toString('base64')}?=`);
    start = end;
  }
  return words.join(`${eol} `);
}

/** A From display name Exchange can read: quoted if it holds specials, encoded if 8-bit. */
function repairFrom(value: string, encode8bit: boolean, eol: string): { value: string; what: string[] } | undefined {
  const unfolded = value.replace(/\r?\n[ \t]+/g, ' ').trim();
  // one mailbox "phrase <addr>"; groups and address lists are left alone
  const m = /^([^<>"]*?)\s*<([^<>\s]+@[^<>\s]+)>$/.exec(unfolded);
  const what: string[] = [];
  if (!m) {
    if (encode8bit && /^"[^"]*"\s*<[^<>\s]+>$/.test(unfolded) && EIGHT_BIT.test(unfolded)) {
      const q = /^"([^"]*)"\s*(<[^<>\s]+>)$/.exec(unfolded)!;
      return { value: `${encodeWords(q[1], eol)} ${q[2]}`, what: ['encoded the raw 8-bit From display name (RFC 2047)'] };
    }
    return undefined;
  }
  const phrase = m[1].trim();
  if (!phrase) return undefined;
  let name = phrase;
  if (encode8bit && EIGHT_BIT.test(phrase)) {
    name = encodeWords(phrase, eol);
    what.push('encoded the raw 8-bit From display name (RFC 2047)');
  } else if (SPECIALS.test(phrase) && !/^(=\?[^?\s]+\?[BbQq]\?[^?\s]*\?=\s*)+$/.test(phrase)) {
    name = `"${phrase.replace(/(["\\])/g, '\\$1')}"`;
    what.push(`quoted the From display name ${JSON.stringify(phrase.slice(0, 80))} (unquoted "${SPECIALS.exec(phrase)![0]}": Exchange would read it as the address)`);
  }
  if (!what.length) return undefined;
  return { value: `${name} <${m[2]}>`, what };
}

/** Repairs a header block (see the module comment). */
export function repairHeaderBlock(block: Buffer, opts: RepairOptions): RepairResult {
  const text = block.toString('latin1');
  const lower = text.toLowerCase();
  // A signed message (DKIM) keeps its From and Subject as signed: rewriting them would break the
  // signature. Adding a missing field or dropping Bcc (which signers leave out) does not.
  const signed = /(^|\n)dkim-signature[ \t]*:/.test(lower);
  const encode8bit = !opts.smtputf8 && !signed && EIGHT_BIT.test(text);
  // Fast path (every message passes here): all present, nothing to quote or encode.
  const hasDate = /(^|\n)date[ \t]*:/.test(lower);
  const hasId = /(^|\n)message-id[ \t]*:/.test(lower);
  const hasBcc = /(^|\n)bcc[ \t]*:/.test(lower);
  const fromLine = /(^|\n)from[ \t]*:([^\n]*(\n[ \t][^\n]*)*)/i.exec(text);
  const fromSuspect = fromLine !== null && !signed && (encode8bit || /[@,;:[\]\\()][^<]*</.test(fromLine[2]));
  if (hasDate && hasId && !hasBcc && !encode8bit && !fromSuspect) return { block, repairs: [] };

  const { fields, tail, eol } = splitFields(text);
  const repairs: string[] = [];
  const out: string[] = [];
  let fromDone = false;
  for (const f of fields) {
    if (f.name === 'bcc') {
      repairs.push('removed the Bcc: header (its recipients stay in the envelope)');
      continue;
    }
    const colon = f.raw.indexOf(':');
    const value = colon > 0 ? f.raw.slice(colon + 1).replace(/\r?\n$/, '') : '';
    if (f.name === 'from' && !fromDone && !signed) {
      fromDone = true;
      const fixed = repairFrom(value, encode8bit, eol);
      if (fixed) {
        out.push(`${f.raw.slice(0, colon)}: ${fixed.value}${eol}`);
        repairs.push(...fixed.what);
        continue;
      }
    }
    if (f.name === 'subject' && encode8bit && EIGHT_BIT.test(value)) {
      const plain = value.replace(/\r?\n([ \t])/g, '$1').trim();
      out.push(`${f.raw.slice(0, colon)}: ${encodeWords(plain, eol)}${eol}`);
      repairs.push('encoded the raw 8-bit Subject (RFC 2047)');
      continue;
    }
    out.push(f.raw);
  }
  // a last field without its line end (a block cut at HEADER_LIMIT) gets one before additions
  if (out.length && !out[out.length - 1].endsWith('\n') && (!hasDate || !hasId)) out[out.length - 1] += eol;
  if (!hasDate) {
    out.push(`Date: ${rfc5322Date(opts.now)}${eol}`);
    repairs.push('added Date: (the client sent none)');
  }
  if (!hasId) {
    out.push(`Message-ID: <${opts.now.getTime().toString(36)}.${opts.unique}@${opts.hostname}>${eol}`);
    repairs.push('added Message-ID: (the client sent none)');
  }
  if (!repairs.length) return { block, repairs };
  return { block: Buffer.from(out.join('') + tail, 'latin1'), repairs };
}
