/**
 * The IMAP migration CSV that Exchange Online's migration batch takes:
 *
 *   EmailAddress,UserName,Password
 *   terrya@contoso.edu,contoso\terry.adams,1091990
 *
 * With one administrator's credentials instead of each user's password, UserName takes the form
 * the source server expects (Microsoft's "CSV files for IMAP migration batches"):
 *   exchange   DOMAIN/Admin/User            (--admin-user "DOMAIN/Admin")
 *   dovecot    user*admin
 *   mirapoint  #user@domain#admin#
 * and Password is the administrator's. Validation flags bad addresses, duplicates, empty
 * credentials, batches over 50,000 rows, and, given mailbox statistics, the limits the seed
 * names: 35 MB per message and 500,000 items per batch. Output is RFC 4180 CSV (csv.ts).
 * Nothing here throws on content: every problem is returned with its line.
 */
import { csvToObjects, formatCsv, parseCsv, CsvSyntaxError } from './csv.ts';

export const IMAP_LIMITS = {
  /** Largest message an IMAP migration moves (seed: "supports email size up to 35MB/mail"). */
  maxMessageBytes: 35 * 1024 * 1024,
  /** Items per migration batch (seed: "limited to 500.000"). */
  maxItemsPerBatch: 500_000,
  /** Rows in one migration batch CSV (Microsoft's CSV-for-IMAP-migration page). */
  maxRows: 50_000,
} as const;

export type ImapServerType = 'exchange' | 'dovecot' | 'mirapoint' | 'generic';

export interface ImapCsvOptions {
  serverType?: ImapServerType;
  /** Administrator to log in as; for exchange "DOMAIN/Admin". */
  adminUser?: string;
  adminPassword?: string;
}

export interface ImapRow {
  line: number;
  emailAddress: string;
  userName: string;
  password: string;
}

export interface ImapProblem {
  line?: number;
  severity: 'error' | 'warning';
  emailAddress?: string;
  message: string;
}

export interface MailboxStats {
  line: number;
  emailAddress: string;
  items?: number;
  largestMessageBytes?: number;
  messagesOverLimit?: number;
}

export interface ImapCsvResult {
  rows: ImapRow[];
  problems: ImapProblem[];
  totals: { mailboxes: number; items?: number };
  csv: string;
}

// A practical addr-spec check: dot-atom local part (or quoted), a dotted domain with a letter TLD.
const ADDRESS = /^(?:[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*|"(?:[^"\\\r\n]|\\.)+")@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z][A-Za-z0-9-]{0,61}$/;

/** Is this a mailbox address Exchange Online will accept as EmailAddress? */
export function isValidAddress(address: string): boolean {
  return address.length <= 254 && ADDRESS.test(address) && address.split('@')[0].length <= 64;
}

/** The UserName for one user when logging in with an administrator's credentials. */
export function adminUserName(serverType: ImapServerType, user: string, emailAddress: string, adminUser: string): string {
  switch (serverType) {
    case 'exchange': {
      // "contoso\terry.adams" → "terry.adams": the domain comes from the admin part.
      const bare = user.includes('\\') ? user.slice(user.lastIndexOf('\\') + 1) : user;
      return `${adminUser}/${bare}`;
    }
    case 'dovecot':
      return `${user}*${adminUser}`;
    case 'mirapoint':
      return `#${user.includes('@') ? user : emailAddress}#${adminUser}#`;
    default:
      return user;
  }
}

/** Reads the user list (EmailAddress[, UserName][, Password]) and builds the migration CSV. */
export function buildImapCsv(text: string, options: ImapCsvOptions = {}, statsText?: string): ImapCsvResult {
  const serverType = options.serverType ?? 'generic';
  const problems: ImapProblem[] = [];
  const useAdmin = options.adminUser !== undefined;
  if (useAdmin && serverType === 'generic') {
    problems.push({ severity: 'error', message: 'administrator credentials need --server-type exchange, dovecot or mirapoint (a generic IMAP server has no admin login form)' });
  }
  if (useAdmin && !options.adminPassword) problems.push({ severity: 'error', message: 'an administrator user needs an administrator password' });
  if (serverType === 'exchange' && useAdmin && !/^[^/]+\/[^/]+$/.test(options.adminUser!)) {
    problems.push({ severity: 'error', message: `for Exchange the administrator is given as DOMAIN/Admin, got "${options.adminUser}"` });
  }

  const input = readTable(text, problems);
  const rows: ImapRow[] = [];
  const byAddress = new Map<string, number>();
  const byUser = new Map<string, number>();
  for (const r of input) {
    const emailAddress = (r.values['emailaddress'] ?? r.values['email'] ?? '').trim();
    const sourceUser = (r.values['username'] ?? '').trim() || emailAddress;
    const ownPassword = r.values['password'] ?? '';
    if (r.fieldCount > r.headerCount) {
      // never cut silently: the part past the last column is usually the rest of a password
      problems.push({ line: r.line, severity: 'error', emailAddress, message: `line ${r.line} has ${r.fieldCount} fields but the header has ${r.headerCount}: a value holding a comma (often a password) must be in double quotes, e.g. "pass,word"` });
      continue;
    }
    if (!isValidAddress(emailAddress)) {
      problems.push({ line: r.line, severity: 'error', emailAddress, message: emailAddress ? `"${emailAddress}" is not a valid email address` : 'EmailAddress is empty' });
      continue;
    }
    const key = emailAddress.toLowerCase();
    if (byAddress.has(key)) {
      problems.push({ line: r.line, severity: 'error', emailAddress, message: `duplicate EmailAddress (first on line ${byAddress.get(key)}): a mailbox can be in a batch once` });
      continue;
    }
    byAddress.set(key, r.line);
    const userKey = sourceUser.toLowerCase();
    if (byUser.has(userKey)) {
      problems.push({ line: r.line, severity: 'warning', emailAddress, message: `UserName "${sourceUser}" also used on line ${byUser.get(userKey)}: two mailboxes would receive the same source mailbox` });
    }
    byUser.set(userKey, r.line);
    const userName = useAdmin ? adminUserName(serverType, sourceUser, emailAddress, options.adminUser!) : sourceUser;
    const password = useAdmin ? options.adminPassword ?? '' : ownPassword;
    if (!useAdmin && password === '') {
      // an invalid row is left out of the CSV (written only with --skip-invalid), like every other error
      problems.push({ line: r.line, severity: 'error', emailAddress, message: 'Password is empty (give each user\'s password, or use --admin-user/--admin-password)' });
      continue;
    }
    rows.push({ line: r.line, emailAddress, userName, password });
  }
  if (rows.length > IMAP_LIMITS.maxRows) {
    problems.push({ severity: 'error', message: `${rows.length} mailboxes: a migration batch CSV takes at most ${IMAP_LIMITS.maxRows} rows; split it into several batches` });
  }
  const totals: ImapCsvResult['totals'] = { mailboxes: rows.length };
  if (statsText !== undefined) totals.items = checkStats(statsText, rows, problems);
  problems.sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
  const csv = formatCsv([['EmailAddress', 'UserName', 'Password'], ...rows.map((r) => [r.emailAddress, r.userName, r.password])]);
  return { rows, problems, totals, csv };
}

function readTable(text: string, problems: ImapProblem[]): { line: number; values: Record<string, string>; fieldCount: number; headerCount: number }[] {
  try {
    const { header, rows } = csvToObjects(parseCsv(text));
    const lower = header.map((h) => h.toLowerCase());
    if (!lower.includes('emailaddress') && !lower.includes('email')) {
      problems.push({ line: 1, severity: 'error', message: `the header has no EmailAddress column (found: ${header.join(', ') || 'nothing'})` });
      return [];
    }
    return rows.map((r) => ({ ...r, headerCount: header.length }));
  } catch (e) {
    problems.push({ line: e instanceof CsvSyntaxError ? e.line : 1, severity: 'error', message: (e as Error).message });
    return [];
  }
}

/** Reads a mailbox statistics CSV and adds problems for the seed's limits; returns the total items. */
function checkStats(statsText: string, rows: ImapRow[], problems: ImapProblem[]): number | undefined {
  const stats = parseMailboxStats(statsText, problems);
  const inBatch = new Set(rows.map((r) => r.emailAddress.toLowerCase()));
  let total = 0;
  for (const s of stats) {
    if (!inBatch.has(s.emailAddress.toLowerCase())) continue;
    total += s.items ?? 0;
    const where = `${s.emailAddress} (statistics line ${s.line})`;
    if (s.largestMessageBytes !== undefined && s.largestMessageBytes > IMAP_LIMITS.maxMessageBytes) {
      problems.push({ severity: 'warning', emailAddress: s.emailAddress, message: `${where}: largest message is ${formatMb(s.largestMessageBytes)}; messages over 35 MB are not migrated over IMAP (move them by PST)` });
    } else if ((s.messagesOverLimit ?? 0) > 0) {
      problems.push({ severity: 'warning', emailAddress: s.emailAddress, message: `${where}: ${s.messagesOverLimit} message(s) over 35 MB will not be migrated over IMAP` });
    }
    if ((s.items ?? 0) > IMAP_LIMITS.maxItemsPerBatch) {
      problems.push({ severity: 'error', emailAddress: s.emailAddress, message: `${where}: ${s.items} items, more than the ${IMAP_LIMITS.maxItemsPerBatch.toLocaleString('en')} a batch migrates; items beyond that are left behind` });
    }
  }
  if (total > IMAP_LIMITS.maxItemsPerBatch) {
    problems.push({ severity: 'error', message: `the batch holds ${total} items in all, more than ${IMAP_LIMITS.maxItemsPerBatch.toLocaleString('en')} per batch: split the mailboxes into several batches` });
  }
  const missing = rows.filter((r) => !stats.some((s) => s.emailAddress.toLowerCase() === r.emailAddress.toLowerCase()));
  for (const r of missing) problems.push({ line: r.line, severity: 'warning', emailAddress: r.emailAddress, message: 'no statistics for this mailbox: its size limits were not checked' });
  return total;
}

/**
 * Mailbox statistics: EmailAddress plus any of ItemCount/Items, LargestMessage/LargestItem (bytes,
 * or "40 MB", "1.2 GB"), MessagesOver35MB. Header names are matched case-insensitively.
 */
export function parseMailboxStats(text: string, problems: ImapProblem[] = []): MailboxStats[] {
  const out: MailboxStats[] = [];
  let table;
  try {
    table = csvToObjects(parseCsv(text));
  } catch (e) {
    problems.push({ line: e instanceof CsvSyntaxError ? e.line : 1, severity: 'error', message: `statistics: ${(e as Error).message}` });
    return out;
  }
  const pick = (v: Record<string, string>, names: string[]): string | undefined => names.map((n) => v[n]).find((x) => x !== undefined && x.trim() !== '');
  for (const row of table.rows) {
    const emailAddress = (pick(row.values, ['emailaddress', 'email', 'mailbox']) ?? '').trim();
    const items = pick(row.values, ['itemcount', 'items', 'messages']);
    const largest = pick(row.values, ['largestmessage', 'largestitem', 'largestmessagebytes', 'maxmessagesize']);
    const over = pick(row.values, ['messagesover35mb', 'over35mb']);
    const s: MailboxStats = { line: row.line, emailAddress };
    if (items !== undefined) {
      const n = Number(items.replace(/[,_\s]/g, ''));
      if (Number.isInteger(n) && n >= 0) s.items = n;
      else problems.push({ line: row.line, severity: 'error', emailAddress, message: `statistics: item count "${items}" is not a whole number` });
    }
    if (largest !== undefined) {
      const bytes = parseSize(largest);
      if (bytes !== undefined) s.largestMessageBytes = bytes;
      else problems.push({ line: row.line, severity: 'error', emailAddress, message: `statistics: size "${largest}" is not a size (e.g. 36700160, 40 MB)` });
    }
    if (over !== undefined && /^\d+$/.test(over.trim())) s.messagesOverLimit = Number(over.trim());
    out.push(s);
  }
  return out;
}

/** "36700160" → bytes; "40 MB", "1.5GB", "900 KB" → bytes (binary multiples, as Exchange reports sizes). */
export function parseSize(text: string): number | undefined {
  const m = /^\s*([\d.,]+)\s*(b|bytes|kb|mb|gb)?\s*$/i.exec(text);
  if (!m) return undefined;
  const n = Number(m[1].replace(/,/g, ''));
  if (!Number.isFinite(n)) return undefined;
  const unit = (m[2] ?? 'b').toLowerCase();
  const mult = unit === 'kb' ? 1024 : unit === 'mb' ? 1024 ** 2 : unit === 'gb' ? 1024 ** 3 : 1;
  return Math.round(n * mult);
}

function formatMb(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}
