/**
 * A small LDIF (RFC 2849) reader for directory exports (ldifde, ldapsearch): entries separated by
 * blank lines, folded lines (a continuation starts with one space), comments (#), `attr: value`,
 * `attr:: base64` and `attr:< url` (kept as the URL, never fetched). Values stay as raw bytes
 * when base64-encoded, because objectGUID is binary. Problems (a line without a colon, bad base64)
 * are returned with their line number; the reader never throws on content.
 */

export interface LdifValue {
  /** The value as text (base64 values decoded as UTF-8). */
  text: string;
  /** The raw bytes, for base64 values. */
  bytes?: Uint8Array;
}

export interface LdifEntry {
  /** 1-based line where the entry starts. */
  line: number;
  dn: string;
  /** Attribute name (lower-case) → its values in order. */
  attributes: Map<string, LdifValue[]>;
}

export interface LdifProblem {
  line: number;
  message: string;
}

/** Parses LDIF text into entries; content problems are returned, not thrown. */
export function parseLdif(text: string): { entries: LdifEntry[]; problems: LdifProblem[] } {
  const entries: LdifEntry[] = [];
  const problems: LdifProblem[] = [];
  const logical = unfold(text);
  let current: LdifEntry | undefined;

  for (const { line, content } of logical) {
    if (content === '') {
      current = undefined;
      continue;
    }
    if (content.startsWith('#')) continue;
    if (/^version:\s*\d+$/i.test(content) && !current && entries.length === 0) continue;
    const m = /^([A-Za-z0-9][A-Za-z0-9;.-]*):(:|<)?\s*(.*)$/.exec(content);
    if (!m) {
      problems.push({ line, message: `not an "attribute: value" line: ${content.slice(0, 60)}` });
      continue;
    }
    const [, rawName, kind, rawValue] = m;
    const name = rawName.toLowerCase();
    let value: LdifValue;
    if (kind === ':') {
      const clean = rawValue.replace(/\s+/g, '');
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(clean) || clean.length % 4 !== 0) {
        problems.push({ line, message: `${rawName}:: value is not valid base64` });
        continue;
      }
      const bytes = Buffer.from(clean, 'base64');
      value = { text: bytes.toString('utf8'), bytes };
    } else {
      value = { text: rawValue };
    }
    if (name === 'dn') {
      current = { line, dn: value.text, attributes: new Map() };
      entries.push(current);
      continue;
    }
    if (!current) {
      problems.push({ line, message: `attribute "${rawName}" before any "dn:" line` });
      continue;
    }
    const list = current.attributes.get(name) ?? [];
    list.push(value);
    current.attributes.set(name, list);
  }
  return { entries, problems };
}

/** Joins folded lines; each logical line keeps the number of its first physical line. */
function unfold(text: string): { line: number; content: string }[] {
  const out: { line: number; content: string }[] = [];
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  lines.forEach((raw, i) => {
    const last = out[out.length - 1];
    if (raw.startsWith(' ') && last && last.content !== '') {
      last.content += raw.slice(1);
    } else {
      out.push({ line: i + 1, content: raw });
    }
  });
  return out;
}

/** The value of the first RDN of a DN: "CN=Smith\, John,OU=x" → "Smith, John" (\XX escapes are UTF-8 bytes). */
export function firstRdnValue(dn: string): string {
  const bytes: number[] = [];
  const eq = dn.indexOf('=');
  if (eq < 0) return '';
  for (let i = eq + 1; i < dn.length; i++) {
    const ch = dn[i];
    if (ch === '\\' && i + 1 < dn.length) {
      const hex = dn.slice(i + 1, i + 3);
      if (/^[0-9a-f]{2}$/i.test(hex)) {
        bytes.push(parseInt(hex, 16));
        i += 2;
      } else {
        bytes.push(...Buffer.from(dn[i + 1], 'utf8'));
        i++;
      }
      continue;
    }
    if (ch === ',' || ch === '+') break;
    const codePoint = dn.codePointAt(i)!;
    if (codePoint > 0xffff) i++; // a surrogate pair is one character
    bytes.push(...Buffer.from(String.fromCodePoint(codePoint), 'utf8'));
  }
  return Buffer.from(bytes).toString('utf8').trim();
}
