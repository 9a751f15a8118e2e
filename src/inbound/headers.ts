/**
 * The header block of a message, read cheaply: where it ends, how many Received: lines it has
 * (mail-loop check), its Subject (decoded) and From address. Only the header part is looked at,
 * and the caller bounds it (HEADER_LIMIT), so a hostile message cannot make this work expensive.
 * Also builds the Received: header the relay adds. Pure functions; malformed input yields
 * "unknown" fields, never an exception.
 */
import { addressParser, decodeWords } from 'postal-mime';

/** At most this much of a message is treated as its header block. */
export const HEADER_LIMIT = 1024 * 1024;

/** Offset just past the empty line ending the header block, or -1 when not within buf. */
export function findHeaderEnd(buf: Buffer): number {
  if (buf[0] === 0x0a) return 1;
  if (buf[0] === 0x0d && buf[1] === 0x0a) return 2;
  for (let i = buf.indexOf(0x0a); i >= 0 && i < buf.length - 1; i = buf.indexOf(0x0a, i + 1)) {
    if (buf[i + 1] === 0x0a) return i + 2;
    if (buf[i + 1] === 0x0d && buf[i + 2] === 0x0a) return i + 3;
  }
  return -1;
}

export interface HeaderSummary {
  received: number;
  subject?: string;
  from?: string;
  /** Header names present, lower-cased. */
  names: Set<string>;
}

/** Unfolded header fields, in order, as [lower-case name, raw value]. */
export function headerFields(block: string): Array<[string, string]> {
  const fields: Array<[string, string]> = [];
  for (const line of block.split(/\r?\n/)) {
    if (!line) continue;
    if ((line[0] === ' ' || line[0] === '\t') && fields.length) {
      fields[fields.length - 1][1] += ` ${line.trim()}`;
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    fields.push([line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()]);
  }
  return fields;
}

/** The first mailbox address in an address header value, if any. */
export function firstAddress(value: string): string | undefined {
  try {
    for (const a of addressParser(value, { flatten: true })) {
      if ('address' in a && a.address) return a.address;
    }
  } catch {
    // unparsable: unknown
  }
  return undefined;
}

export function summarizeHeaders(block: Buffer): HeaderSummary {
  const fields = headerFields(block.toString('latin1'));
  const summary: HeaderSummary = { received: 0, names: new Set() };
  for (const [name, value] of fields) {
    summary.names.add(name);
    if (name === 'received') summary.received++;
    else if (name === 'subject' && summary.subject === undefined) summary.subject = decodeSubject(value);
    else if (name === 'from' && summary.from === undefined) summary.from = firstAddress(Buffer.from(value, 'latin1').toString('utf8'));
  }
  return summary;
}

function decodeSubject(raw: string): string {
  const text = Buffer.from(raw, 'latin1').toString('utf8');
  try {
    return decodeWords(text).slice(0, 998);
  } catch {
    return text.slice(0, 998);
  }
}

export interface ReceivedInfo {
  helo?: string;
  clientHostname?: string;
  clientAddress: string;
  hostname: string;
  /** ESMTP, ESMTPS, ESMTPSA… (smtp-server's session.transmissionType). */
  protocol: string;
  id: string;
  /** Named only when the message has exactly one recipient (the others stay private). */
  recipient?: string;
  date: Date;
}

/** RFC 5322 date-time: "Wed, 25 Nov 2026 17:45:01 +0000". */
export function rfc5322Date(d: Date): string {
  return d.toUTCString().replace(/GMT$/, '+0000');
}

/** Values in a Received header come from the client: keep them to safe printable characters. */
function safe(s: string): string {
  return s.replace(/[^\x21-\x7e]/g, '').slice(0, 255);
}

export function receivedHeader(r: ReceivedInfo): string {
  const from = `from ${safe(r.helo || 'unknown')} (${r.clientHostname && r.clientHostname !== `[${r.clientAddress}]` ? `${safe(r.clientHostname)} ` : ''}[${safe(r.clientAddress)}])`;
  const by = `by ${safe(r.hostname)} with ${safe(r.protocol)} id ${safe(r.id)}`;
  const forPart = r.recipient ? `\r\n\tfor <${safe(r.recipient)}>` : '';
  return `Received: ${from}\r\n\t${by}${forPart}; ${rfc5322Date(r.date)}\r\n`;
}
