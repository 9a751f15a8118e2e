/**
 * RFC 4180 CSV, both ways, for the admin helpers (directory-sync filter input, IMAP migration CSV).
 *
 * parseCsv() reads quoted fields (with "" for a quote, and commas and line breaks inside quotes),
 * CRLF or LF line ends, an optional UTF-8 byte-order mark, and keeps the 1-based line on which each
 * record starts so problems can be reported as "line N". An unterminated quote is an error with
 * its line, never a silently shortened file. formatCsv() quotes every field that needs it and ends
 * records with CRLF, as RFC 4180 asks, so Excel and Exchange's migration upload read it back unchanged.
 */

export interface CsvRecord {
  /** 1-based line number where the record starts. */
  line: number;
  fields: string[];
}

export class CsvSyntaxError extends Error {
  readonly line: number;
  constructor(message: string, line: number) {
    super(`line ${line}: ${message}`);
    this.name = 'CsvSyntaxError';
    this.line = line;
  }
}

/** Parses CSV text into records; blank lines are skipped. Throws CsvSyntaxError on an unterminated quote. */
export function parseCsv(text: string, delimiter = ','): CsvRecord[] {
  const src = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  const records: CsvRecord[] = [];
  let fields: string[] = [];
  let field = '';
  let line = 1;
  let recordLine = 1;
  let inQuotes = false;
  let quoteLine = 0;
  let fieldWasQuoted = false;

  const endRecord = (): void => {
    fields.push(field);
    const blank = fields.length === 1 && fields[0] === '' && !fieldWasQuoted;
    if (!blank) records.push({ line: recordLine, fields });
    fields = [];
    field = '';
    fieldWasQuoted = false;
  };

  for (let i = 0; i < src.length; i++) {
    const ch = src[i];
    if (inQuotes) {
      if (ch === '"') {
        if (src[i + 1] === '"') {
          field += '"';
          i++;
        } else {
          inQuotes = false;
        }
      } else {
        if (ch === '\n') line++;
        field += ch;
      }
      continue;
    }
    if (ch === '"' && field === '' && !fieldWasQuoted) {
      inQuotes = true;
      fieldWasQuoted = true;
      quoteLine = line;
    } else if (ch === delimiter) {
      fields.push(field);
      field = '';
      fieldWasQuoted = false;
    } else if (ch === '\r' && src[i + 1] === '\n') {
      // CRLF: handled on the LF.
    } else if (ch === '\n' || ch === '\r') {
      endRecord();
      line++;
      recordLine = line;
    } else {
      // A stray quote inside an unquoted field is kept as text (Excel does the same).
      field += ch;
    }
  }
  if (inQuotes) throw new CsvSyntaxError('a quoted field is never closed (missing ")', quoteLine);
  if (field !== '' || fields.length > 0 || fieldWasQuoted) endRecord();
  return records;
}

/** One field, quoted when it holds a delimiter, quote, line break or leading/trailing space. */
export function formatCsvField(value: string, delimiter = ','): string {
  if (value.includes(delimiter) || /["\r\n]/.test(value) || /^\s|\s$/.test(value)) {
    return `"${value.replace(/"/g, '""')}"`;
  }
  return value;
}

/** Rows → CSV text with CRLF record ends (RFC 4180 §2). */
export function formatCsv(rows: readonly (readonly string[])[], delimiter = ','): string {
  return rows.map((r) => r.map((f) => formatCsvField(f, delimiter)).join(delimiter)).join('\r\n') + '\r\n';
}

/** Records with a header row → objects keyed by lower-cased header, each keeping its line number. */
export function csvToObjects(records: CsvRecord[]): { header: string[]; rows: { line: number; values: Record<string, string>; fieldCount: number }[] } {
  const [head, ...rest] = records;
  if (!head) return { header: [], rows: [] };
  const header = head.fields.map((h) => h.trim());
  const rows = rest.map((r) => {
    const values: Record<string, string> = {};
    header.forEach((h, i) => {
      values[h.toLowerCase()] = r.fields[i] ?? '';
    });
    // fieldCount lets a caller refuse a row longer than the header (an unquoted comma) instead of cutting it
    return { line: r.line, values, fieldCount: r.fields.length };
  });
  return { header, rows };
}

/**
 * Decodes an exported file to text by its byte-order mark: Windows tools write UTF-16 (Export-Csv
 * -Encoding Unicode, ldifde -u) as often as UTF-8. No BOM means UTF-8.
 */
export function decodeExport(bytes: Uint8Array): string {
  if (bytes[0] === 0xff && bytes[1] === 0xfe) return new TextDecoder('utf-16le').decode(bytes.subarray(2));
  if (bytes[0] === 0xfe && bytes[1] === 0xff) return new TextDecoder('utf-16be').decode(bytes.subarray(2));
  return new TextDecoder('utf-8').decode(bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? bytes.subarray(3) : bytes);
}
