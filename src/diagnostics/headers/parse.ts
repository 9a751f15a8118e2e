/**
 * Header block parsing for the Message Header Analyzer: takes a whole message or headers pasted
 * from a mail client, and returns the header fields in order, unfolded (RFC 5322 §2.2.3), with
 * RFC 2047 encoded-words decoded for display. Tolerant of what people paste: a leading mbox
 * "From " line, CRLF or LF, indented first lines, a missing blank line at the end. The body, if
 * any, is ignored. Also: RFC 5322 comment stripping and date parsing (including the obsolete
 * zone names and the "(PST)" comments Gmail adds), because several analyzers need them.
 */

export interface HeaderField {
  /** Field name as written. */
  name: string;
  /** Lower-case name, for lookups. */
  key: string;
  /** Unfolded value, leading/trailing space trimmed, encoded-words left as they are. */
  value: string;
}

/** Splits the header block into fields; stops at the first empty line after a field. */
export function parseHeaderBlock(text: string): HeaderField[] {
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  let i = 0;
  while (i < lines.length && lines[i].trim() === '') i++;
  if (lines[i]?.startsWith('From ')) i++; // mbox separator line
  const fields: HeaderField[] = [];
  for (; i < lines.length; i++) {
    const line = lines[i];
    if (line.trim() === '') {
      if (fields.length > 0) break;
      continue;
    }
    const last = fields[fields.length - 1];
    if (/^[ \t]/.test(line) && last) {
      // folded continuation: the line break is removed, the whitespace kept (RFC 5322 unfolding)
      last.value += ` ${line.trim()}`;
      continue;
    }
    const m = /^\s*([!-9;-~]+)\s*:(.*)$/.exec(line);
    if (!m) continue; // not a header line (pasted UI text); skipped rather than guessed at
    fields.push({ name: m[1], key: m[1].toLowerCase(), value: m[2].trim() });
  }
  return fields;
}

/** Decodes RFC 2047 encoded-words (=?charset?B|Q?…?=) for display; unknown charsets are left as they are. */
export function decodeEncodedWords(value: string): string {
  return value
    .replace(/(=\?[^?\s]+\?[BbQq]\?[^?\s]*\?=)\s+(?==\?)/g, '$1') // whitespace between encoded-words is dropped
    .replace(/=\?([^?\s*]+)(?:\*[^?\s]*)?\?([BbQq])\?([^?\s]*)\?=/g, (whole, charset: string, enc: string, text: string) => {
      try {
        const bytes = enc.toUpperCase() === 'B'
          ? Buffer.from(text, 'base64')
          : Buffer.from(text.replace(/_/g, ' ').replace(/=([0-9A-Fa-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))), 'latin1');
        return new TextDecoder(charset.toLowerCase(), { fatal: false }).decode(bytes);
      } catch {
        return whole;
      }
    });
}

/** Removes RFC 5322 comments (nested parentheses, quoted strings respected) and returns them separately. */
export function stripComments(value: string): { text: string; comments: string[] } {
  let text = '';
  const comments: string[] = [];
  let depth = 0;
  let current = '';
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const ch = value[i];
    if (ch === '\\' && i + 1 < value.length) {
      if (depth > 0) current += value[i + 1];
      else text += ch + value[i + 1];
      i++;
      continue;
    }
    if (depth === 0 && ch === '"') quoted = !quoted;
    if (!quoted && ch === '(') {
      if (depth > 0) current += ch;
      depth++;
      continue;
    }
    if (!quoted && ch === ')' && depth > 0) {
      depth--;
      if (depth === 0) {
        comments.push(current.trim());
        current = '';
        text += ' ';
      } else current += ch;
      continue;
    }
    if (depth > 0) current += ch;
    else text += ch;
  }
  if (depth > 0 && current) comments.push(current.trim()); // unbalanced: keep what we have
  return { text: text.replace(/\s+/g, ' ').trim(), comments };
}

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const ZONES: Record<string, number> = {
  UT: 0, UTC: 0, GMT: 0, Z: 0,
  EST: -300, EDT: -240, CST: -360, CDT: -300, MST: -420, MDT: -360, PST: -480, PDT: -420,
};

/**
 * Parses an RFC 5322 date-time (and its obsolete forms: two-digit years, zone names, fractional
 * seconds, a missing day name) to epoch ms, or undefined. Falls back to Date.parse for oddities.
 */
export function parseMailDate(input: string): number | undefined {
  const text = stripComments(input).text;
  const m = /(\d{1,2})\s+([A-Za-z]{3})[a-z]*\s+(\d{2,4})\s+(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?\s*([+-]\d{4}|[A-Za-z]{1,5})?/.exec(text);
  if (m) {
    const month = MONTHS.indexOf(m[2].toLowerCase());
    let year = Number(m[3]);
    if (m[3].length === 2) year += year < 50 ? 2000 : 1900; // RFC 5322 §4.3
    else if (m[3].length === 3) year += 1900;
    if (month >= 0) {
      const zone = m[8] ?? '-0000';
      let offsetMinutes: number;
      if (/^[+-]\d{4}$/.test(zone)) {
        const sign = zone[0] === '-' ? -1 : 1;
        offsetMinutes = sign * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(3, 5)));
      } else {
        offsetMinutes = ZONES[zone.toUpperCase()] ?? 0; // RFC 5322: unknown military zones mean -0000
      }
      const ms = m[7] ? Math.round(Number(`0.${m[7]}`) * 1000) : 0;
      const utc = Date.UTC(year, month, Number(m[1]), Number(m[4]), Number(m[5]), Number(m[6] ?? 0), ms);
      return utc - offsetMinutes * 60_000;
    }
  }
  const fallback = Date.parse(text);
  return Number.isNaN(fallback) ? undefined : fallback;
}
