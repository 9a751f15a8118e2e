/**
 * Reads a pickup file into an envelope and the message to queue. Three shapes are accepted:
 *   (a) IIS / .NET SmtpClient drop files: "X-Sender:" and "X-Receiver:" lines before the message
 *       give the envelope; they are removed from the message.
 *   (b) a plain RFC 5322 message: recipients from To/Cc/Bcc, sender from Sender or else From;
 *       the Bcc header is removed before the message is queued.
 *   (c) the hand-written "FROM: / TO: / SUBJECT:" test file of Microsoft's IIS relay recipe
 *       (header names in any case, no Date or Message-ID): read as (b).
 * Whatever the shape: a UTF-8 or UTF-16 byte-order mark is handled, bare LF/CR become CRLF,
 * Date and Message-ID are added when missing. A file that is not a message (empty, binary,
 * no headers, no sender, no usable recipient) yields { error } with a reason in plain words
 * for the badmail .BDR file; this module never throws on bad input.
 */
import { randomBytes } from 'node:crypto';
import { addressParser, decodeWords } from 'postal-mime';
import { repairHeaderBlock } from '../core/header-repair.ts';

export interface PickupMessage {
  mailFrom: string;
  recipients: string[];
  content: Buffer;
  subject?: string;
  headerFrom?: string;
  format: 'iis' | 'rfc5322';
  /** Header repairs made (core/header-repair.ts), in words. */
  repairs: string[];
}

export type PickupParse = PickupMessage | { error: string };

const HEADER_LINE = /^[\x21-\x39\x3b-\x7e]+:/;

/** RFC 5322 date-time: "Wed, 25 Nov 2026 17:45:01 +0000". */
export function rfc5322Date(d: Date): string {
  return d.toUTCString().replace(/GMT$/, '+0000');
}

/** Unfolded header fields as [lower-case name, value]. */
function headerFields(lines: string[]): Array<[string, string]> {
  return lines.map((line) => {
    const colon = line.indexOf(':');
    return [line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).replace(/\r\n[ \t]+/g, ' ').trim()];
  });
}

/** Bytes → text, honouring a UTF-8 or UTF-16 byte-order mark (Notepad writes both). */
function decodeText(raw: Buffer): string {
  if (raw[0] === 0xff && raw[1] === 0xfe) return raw.subarray(2).toString('utf16le');
  if (raw[0] === 0xfe && raw[1] === 0xff) return Buffer.from(raw.subarray(2)).swap16().toString('utf16le');
  if (raw[0] === 0xef && raw[1] === 0xbb && raw[2] === 0xbf) return raw.subarray(3).toString('utf8');
  return raw.toString('utf8');
}

/** Plain addresses from a header value or X-Receiver value ("A <a@x>, b@y"). */
function addressesIn(value: string): string[] {
  try {
    return addressParser(value, { flatten: true }).flatMap((a) => ('address' in a && a.address ? [a.address] : []));
  } catch {
    return [];
  }
}

function isAddress(a: string): boolean {
  return /^[^\s@<>]+@[^\s@<>]+$/.test(a);
}

function looksBinary(raw: Buffer): boolean {
  const sample = raw.subarray(0, 8192);
  let control = 0;
  for (const b of sample) {
    if (b === 0) return true;
    if (b < 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d && b !== 0x0c) control++;
  }
  return control > sample.length / 100;
}

export function parsePickupFile(raw: Buffer, opts: { hostname: string; now: Date }): PickupParse {
  if (raw.length === 0 || !raw.toString('latin1').trim()) return { error: 'The file is empty.' };
  const utf16 = (raw[0] === 0xff && raw[1] === 0xfe) || (raw[0] === 0xfe && raw[1] === 0xff);
  if (!utf16 && looksBinary(raw)) return { error: 'The file is not a text message: it contains binary data (NUL or other control bytes). Pickup takes e-mail messages saved as text (.eml or .txt).' };
  const lines = decodeText(raw).split(/\r\n|\r|\n/);
  if (lines.length && lines[lines.length - 1] === '') lines.pop();

  // (a) envelope lines written by IIS / .NET SmtpClient come first.
  let envelopeSender: string | undefined;
  const envelopeRecipients: string[] = [];
  let i = 0;
  for (; i < lines.length; i++) {
    const m = /^x-(sender|receiver):\s*(.*)$/i.exec(lines[i]);
    if (!m) break;
    const value = m[2].trim();
    if (m[1].toLowerCase() === 'sender') envelopeSender = value === '<>' ? '' : (addressesIn(value)[0] ?? value.replace(/^<|>$/g, ''));
    else envelopeRecipients.push(...(addressesIn(value).length ? addressesIn(value) : [value.replace(/^<|>$/g, '')]));
  }
  const iis = envelopeSender !== undefined || envelopeRecipients.length > 0;

  // Header block: header lines and their continuations, up to the empty line (or the first
  // line that is neither, taken as the start of the body of a hand-written file).
  const headerLines: string[] = [];
  for (; i < lines.length; i++) {
    const line = lines[i];
    if (line === '') { i++; break; }
    if (HEADER_LINE.test(line)) headerLines.push(line);
    else if ((line[0] === ' ' || line[0] === '\t') && headerLines.length) headerLines[headerLines.length - 1] += `\r\n${line}`;
    else break;
  }
  const body = lines.slice(i);
  if (!headerLines.length) {
    return { error: 'No message headers found: the file must start with header lines such as "From: ...", "To: ..." and "Subject: ...", then an empty line, then the text.' };
  }
  const fields = headerFields(headerLines);
  const values = (name: string): string[] => fields.filter(([n]) => n === name).map(([, v]) => v);

  const headerFrom = addressesIn(values('from').join(', '))[0];
  const sender = addressesIn(values('sender').join(', '))[0];
  const mailFrom = iis && envelopeSender !== undefined ? envelopeSender : (sender ?? headerFrom);
  const recipients = iis && envelopeRecipients.length ? envelopeRecipients : ['to', 'cc', 'bcc'].flatMap((h) => addressesIn(values(h).join(', ')));
  const unique = [...new Map(recipients.map((r) => [r.toLowerCase(), r])).values()];

  const quoted = (name: string): string => JSON.stringify(values(name).join(', ').slice(0, 200));
  if (mailFrom === undefined && values('from').length) return { error: `The "From:" header (${quoted('from')}) is not an e-mail address. Replace it with a real address.` };
  if (!unique.length && (values('to').length || values('cc').length)) {
    return { error: `The "To:"/"Cc:" headers (${quoted('to')}) hold no e-mail address. Replace them with real addresses.` };
  }
  if (mailFrom === undefined) return { error: 'No sender: the message has no "From:" header (and no "X-Sender:" line), so there is no address to send from or to return failures to.' };
  if (mailFrom !== '' && !isAddress(mailFrom)) return { error: `The sender "${mailFrom}" is not an e-mail address.` };
  if (!unique.length) return { error: 'No recipients: the message has no "To:", "Cc:" or "Bcc:" header with an e-mail address (and no "X-Receiver:" lines).' };
  const bad = unique.filter((r) => !isAddress(r));
  if (bad.length) return { error: `Not an e-mail address: ${bad.map((b) => `"${b}"`).join(', ')}. Replace it with a real address.` };

  // The message as queued: CRLF line ends throughout, and the same repairs as a message from SMTP
  // (core/header-repair.ts): Bcc removed (it would show every blind recipient), Date and
  // Message-ID added when missing, the From display name and 8-bit Subject made readable.
  const repaired = repairHeaderBlock(Buffer.from(`${headerLines.join('\r\n')}\r\n\r\n`, 'utf8'), { hostname: opts.hostname, now: opts.now, unique: randomBytes(6).toString('hex') });
  const text = Buffer.concat([repaired.block, Buffer.from(body.map((l) => `${l}\r\n`).join(''), 'utf8')]);
  const rawSubject = values('subject')[0];
  let subject: string | undefined = rawSubject;
  try {
    subject = rawSubject === undefined ? undefined : decodeWords(rawSubject);
  } catch {
    // keep it undecoded
  }
  return { mailFrom, recipients: unique, content: text, subject, headerFrom, format: iis ? 'iis' : 'rfc5322', repairs: repaired.repairs };
}
