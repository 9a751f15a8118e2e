/**
 * Directory-sync exclusion filter: the DirectorySyncFilters XML of the BPOS/DirSync era, one
 * <ExcludedDN>CN={objectGUID}</ExcludedDN> per user, each preceded by a comment naming the user:
 *
 *   <?xml version="1.0" encoding="utf-8"?>
 *   <DirectorySyncFilters>
 *   <!-- Terry Adams --> <ExcludedDN>CN={9030057d-d403-4590-8c3b-a643fc36df3d}</ExcludedDN>
 *   </DirectorySyncFilters>
 *
 * Input is a CSV (name + objectGUID columns, as Get-ADUser | Export-Csv writes) or an LDIF export
 * (objectGUID:: base64, converted with Microsoft's byte order). Guarantees: every GUID written was
 * validated; each GUID appears once; the output is well-formed XML whatever the names contain. The
 * seed's PowerShell pasted names straight into comments, which breaks on "--" (ends the comment
 * early); here names are made comment-safe reversibly (see commentSafeText). Bad rows are returned
 * as problems with their line number, never dropped silently.
 */
import { csvToObjects, parseCsv, CsvSyntaxError } from './csv.ts';
import { guidFromBytes, parseGuidText } from './guid.ts';
import { firstRdnValue, parseLdif } from './ldif.ts';

export interface DirsyncEntry {
  name: string;
  guid: string;
  /** 1-based line in the input. */
  line: number;
}

export interface DirsyncProblem {
  line: number;
  severity: 'error' | 'warning';
  name?: string;
  message: string;
}

export interface DirsyncResult {
  format: 'csv' | 'ldif';
  entries: DirsyncEntry[];
  problems: DirsyncProblem[];
  xml: string;
}

const NAME_COLUMNS = ['name', 'displayname', 'cn', 'samaccountname', 'userprincipalname'];
const GUID_COLUMNS = ['objectguid', 'guid'];

/** Reads the input (format guessed from the content when 'auto') and builds the XML from the valid entries. */
export function buildDirsyncFilter(text: string, format: 'csv' | 'ldif' | 'auto' = 'auto'): DirsyncResult {
  const chosen = format === 'auto' ? guessFormat(text) : format;
  const read = chosen === 'ldif' ? readLdifEntries(text) : readCsvEntries(text);
  const { entries, problems } = dedupe(read.entries, read.problems);
  return { format: chosen, entries, problems, xml: renderDirsyncXml(entries) };
}

function guessFormat(text: string): 'csv' | 'ldif' {
  return /^(version:\s*\d+\s*$|dn::?\s)/im.test(text.replace(/^\uFEFF/, '').trimStart().split(/\r?\n/, 3).join('\n')) ? 'ldif' : 'csv';
}

/** CSV with a header row; a leading "#TYPE …" line from PowerShell's Export-Csv is skipped. */
export function readCsvEntries(text: string): { entries: DirsyncEntry[]; problems: DirsyncProblem[] } {
  let records;
  try {
    records = parseCsv(text);
  } catch (e) {
    const line = e instanceof CsvSyntaxError ? e.line : 1;
    return { entries: [], problems: [{ line, severity: 'error', message: (e as Error).message }] };
  }
  if (records[0]?.fields[0]?.startsWith('#TYPE')) records = records.slice(1);
  const { header, rows } = csvToObjects(records);
  const lower = header.map((h) => h.toLowerCase());
  const nameCol = NAME_COLUMNS.find((c) => lower.includes(c)) ?? (lower.includes('distinguishedname') ? 'distinguishedname' : undefined);
  const guidCol = GUID_COLUMNS.find((c) => lower.includes(c));
  if (!guidCol) {
    return { entries: [], problems: [{ line: records[0]?.line ?? 1, severity: 'error', message: `no objectGUID column in the header (found: ${header.join(', ') || 'nothing'})` }] };
  }
  const entries: DirsyncEntry[] = [];
  const problems: DirsyncProblem[] = [];
  for (const row of rows) {
    const rawName = nameCol ? row.values[nameCol] ?? '' : '';
    const name = nameCol === 'distinguishedname' ? firstRdnValue(rawName) : rawName;
    const guid = parseGuidText(row.values[guidCol] ?? '');
    if (!guid.ok) problems.push({ line: row.line, severity: 'error', name, message: guid.reason });
    else entries.push({ name, guid: guid.guid, line: row.line });
  }
  return { entries, problems };
}

/** LDIF entries; the name is `name`, `displayName` or `cn`, else the first RDN of the DN. */
export function readLdifEntries(text: string): { entries: DirsyncEntry[]; problems: DirsyncProblem[] } {
  const parsed = parseLdif(text);
  const problems: DirsyncProblem[] = parsed.problems.map((p) => ({ line: p.line, severity: 'error', message: p.message }));
  const entries: DirsyncEntry[] = [];
  for (const entry of parsed.entries) {
    const attr = (n: string): string | undefined => entry.attributes.get(n)?.[0]?.text;
    const name = attr('name') ?? attr('displayname') ?? attr('cn') ?? firstRdnValue(entry.dn);
    const value = entry.attributes.get('objectguid')?.[0];
    if (!value) {
      problems.push({ line: entry.line, severity: 'error', name, message: 'entry has no objectGUID attribute (export it with -l objectGUID or add it to the attribute list)' });
      continue;
    }
    // Binary (objectGUID::) is the usual form; some tools write the text form instead.
    const guid = value.bytes ? guidFromBytes(value.bytes) : parseGuidText(value.text);
    if (!guid.ok) problems.push({ line: entry.line, severity: 'error', name, message: guid.reason });
    else entries.push({ name, guid: guid.guid, line: entry.line });
  }
  return { entries, problems };
}

function dedupe(entries: DirsyncEntry[], problems: DirsyncProblem[]): { entries: DirsyncEntry[]; problems: DirsyncProblem[] } {
  const seen = new Map<string, DirsyncEntry>();
  const out: DirsyncEntry[] = [];
  const all = [...problems];
  for (const e of entries) {
    const first = seen.get(e.guid);
    if (first) {
      all.push({ line: e.line, severity: 'warning', name: e.name, message: `GUID ${e.guid} already listed on line ${first.line} (${first.name || 'no name'}); written once` });
      continue;
    }
    seen.set(e.guid, e);
    out.push(e);
  }
  all.sort((a, b) => a.line - b.line);
  return { entries: out, problems: all };
}

/** The XML document for these entries (CRLF line ends, as the Windows tool's own files have). */
export function renderDirsyncXml(entries: readonly DirsyncEntry[]): string {
  const lines = ['<?xml version="1.0" encoding="utf-8"?>', '<DirectorySyncFilters>'];
  for (const e of entries) {
    const comment = e.name ? `<!-- ${commentSafeText(e.name)} --> ` : '';
    lines.push(`${comment}<ExcludedDN>CN={${e.guid}}</ExcludedDN>`);
  }
  lines.push('</DirectorySyncFilters>');
  return lines.join('\r\n') + '\r\n';
}

/**
 * Makes text safe inside an XML comment, reversibly (commentTextToName undoes it):
 * "&" → "&amp;" first (so the escapes below stay unambiguous), a "-" followed by another "-"
 * → "&#45;" (a comment may not contain "--"), and characters XML 1.0 forbids or that would
 * break the one-line layout (controls, line breaks, lone surrogates, U+FFFE/FFFF) → "&#xHH;".
 * Entities are not expanded inside comments; they are a readable, documented escape.
 */
export function commentSafeText(name: string): string {
  let out = '';
  for (const ch of name.replace(/&/g, '&amp;')) {
    const cp = ch.codePointAt(0)!;
    const forbidden = cp < 0x20 || (cp >= 0xd800 && cp <= 0xdfff) || cp === 0xfffe || cp === 0xffff;
    out += forbidden ? `&#x${cp.toString(16).toUpperCase()};` : ch;
  }
  return out.replace(/-(?=-)/g, '&#45;').replace(/-$/, '&#45;');
}

/** Reverses commentSafeText. */
export function commentTextToName(text: string): string {
  return text
    .replace(/&#45;/g, '-')
    .replace(/&#x([0-9A-F]+);/g, (_, h: string) => String.fromCodePoint(parseInt(h, 16)))
    .replace(/&amp;/g, '&');
}
