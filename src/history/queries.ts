/**
 * The read side of history, one set of SQL for both backends: search with keyset paging, a
 * message with its timeline, counts per time bucket, recent errors, and the retention purge.
 *
 * Searches are shaped to hit one index each: by recipient they start from the recipients table
 * (address or domain, then time), otherwise from messages (sender, client, status or time), and
 * pages continue from the last row's (time, id) rather than an OFFSET, so page 50 costs what
 * page 1 does.
 */
import type { HistoryBackend } from './sql.ts';
import { likePattern } from './sql.ts';
import { resolveIdPrefix } from '../core/ids.ts';
import type { HistoryQuery, MessageDetail, MessageSummary, RecentError, SearchResult, StatsBucket, TimelineEntry } from './types.ts';

const iso = (v: unknown): string => new Date(Number(v)).toISOString();
const opt = (v: unknown): string | undefined => (v === null || v === undefined ? undefined : String(v));
const num = (v: unknown): number | undefined => (v === null || v === undefined ? undefined : Number(v));

function encodeCursor(at: number, id: string): string {
  return Buffer.from(JSON.stringify([at, id])).toString('base64url');
}

function decodeCursor(cursor: string): [number, string] | undefined {
  try {
    const v = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown;
    if (Array.isArray(v) && typeof v[0] === 'number' && typeof v[1] === 'string') return [v[0], v[1]];
  } catch {
    // An unreadable cursor starts from the first page rather than failing the search.
  }
  return undefined;
}

function toSummary(row: Record<string, unknown>): MessageSummary {
  let recipients: string[] = [];
  try {
    recipients = JSON.parse(String(row.recipients ?? '[]')) as string[];
  } catch {
    recipients = [];
  }
  return {
    id: String(row.id), receivedAt: iso(row.received_at), mailFrom: String(row.mail_from), recipients,
    subject: opt(row.subject), size: Number(row.size ?? 0), client: String(row.client ?? ''), source: String(row.source ?? ''),
    upstream: opt(row.upstream), route: opt(row.route), status: String(row.status), reason: opt(row.reason), updatedAt: iso(row.updated_at),
  };
}

/** Runs a search; see HistoryQuery for the meaning of each field. */
export async function searchMessages(db: HistoryBackend, q: HistoryQuery): Promise<SearchResult> {
  const limit = Math.min(Math.max(Math.trunc(q.limit ?? 50), 1), 500);
  const where: string[] = [];
  const params: unknown[] = [];
  let from = 'messages m';
  let timeCol = 'm.received_at';
  let idCol = 'm.id';
  const rcpt = q.recipient?.trim().toLowerCase();
  const matched: string[] = [];
  let select = 'm.*';
  if (rcpt) {
    from = 'recipients r JOIN messages m ON m.id = r.message_id';
    timeCol = 'r.received_at';
    idCol = 'r.message_id';
    select = 'm.*, r.address AS matched_recipient';
    if (rcpt.startsWith('@')) {
      where.push('r.domain = ?');
      params.push(rcpt.slice(1));
      matched.push(`a recipient at ${rcpt.slice(1)}`);
    } else if (isFullAddress(rcpt)) {
      where.push('r.address = ?');
      params.push(rcpt);
      matched.push(`recipient ${rcpt}`);
    } else {
      // Part of an address ("person42", "@examp", "sales@"): a scan of the recipients, fine at history's size.
      where.push("r.address LIKE ? ESCAPE '\\'");
      params.push(likePattern(rcpt));
      matched.push(`a recipient containing "${rcpt}"`);
    }
  }
  const sender = q.sender?.trim().toLowerCase();
  if (sender) {
    if (isFullAddress(sender)) {
      where.push('m.mail_from = ?');
      params.push(sender);
      matched.push(`sender ${sender}`);
    } else {
      where.push("LOWER(m.mail_from) LIKE ? ESCAPE '\\'");
      params.push(likePattern(sender));
      matched.push(`a sender containing "${sender}"`);
    }
  }
  if (q.client?.trim()) {
    where.push('m.client = ?');
    params.push(q.client.trim());
    matched.push(`client ${q.client.trim()}`);
  }
  if (q.route?.trim()) {
    // a split message lists its routes comma-separated: match one whole name
    where.push("(',' || m.route || ',') LIKE ? ESCAPE '\\'");
    params.push(`%,${q.route.trim().replace(/[\\%_]/g, (c) => `\\${c}`)},%`);
  }
  if (q.status) {
    where.push('m.status = ?');
    params.push(q.status);
    matched.push(`status ${q.status}`);
  }
  if (q.subject?.trim()) {
    where.push("LOWER(m.subject) LIKE ? ESCAPE '\\'");
    params.push(likePattern(q.subject.trim()));
    matched.push(`a subject containing "${q.subject.trim()}"`);
  }
  if (q.from) {
    where.push(`${timeCol} >= ?`);
    params.push(q.from.getTime());
  }
  if (q.to) {
    where.push(`${timeCol} < ?`);
    params.push(q.to.getTime());
  }
  const after = q.cursor ? decodeCursor(q.cursor) : undefined;
  if (after) {
    where.push(`(${timeCol}, ${idCol}) < (?, ?)`);
    params.push(after[0], after[1]);
  }
  const sql = `SELECT ${select} FROM ${from}${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY ${timeCol} DESC, ${idCol} DESC LIMIT ?`;
  const rows = await db.query(sql, [...params, limit + 1]);
  // A domain search meets a message once per matching recipient; rows of one message are
  // adjacent (same time and id), and the (time, id) cursor skips any remainder on the next page.
  const unique = rows.filter((r, i) => i === 0 || String(r.id) !== String(rows[i - 1].id));
  const page = unique.slice(0, limit);
  const more = unique.length > limit || rows.length > limit;
  const last = more ? page[page.length - 1] : undefined;
  return {
    messages: page.map((r) => ({ ...toSummary(r), ...(r.matched_recipient ? { matchedRecipient: String(r.matched_recipient) } : {}) })),
    next: last ? encodeCursor(Number(last.received_at), String(last.id)) : undefined,
    matched: matched.length ? `messages with ${matched.join(' and ')}` : undefined,
  };
}

/** A whole address (local part, @, a domain with a dot) is looked up exactly, on its index; anything less by part. */
function isFullAddress(s: string): boolean {
  return /^[^@\s]+@[^@\s]+\.[^@\s.]+$/.test(s);
}

function toTimeline(row: Record<string, unknown>): TimelineEntry {
  return {
    at: iso(row.at), kind: String(row.kind) as TimelineEntry['kind'], upstream: opt(row.upstream), recipient: opt(row.recipient),
    action: opt(row.action), status: opt(row.status), replyCode: num(row.reply_code), diagnostic: opt(row.diagnostic),
    reason: opt(row.reason), durationMs: num(row.duration_ms), possibleDuplicate: Number(row.possible_duplicate ?? 0) === 1 || undefined,
  };
}

/** A message with each recipient's last state and its whole timeline, oldest first. */
export async function getMessage(db: HistoryBackend, given: string): Promise<MessageDetail | undefined> {
  const id = await resolveHistoryId(db, given);
  if (!id) return undefined;
  const [row] = await db.query('SELECT * FROM messages WHERE id = ?', [id]);
  const events = await db.query('SELECT * FROM events WHERE message_id = ? ORDER BY at, seq', [id]);
  if (!row && events.length === 0) return undefined;
  const rcpts = await db.query('SELECT address, status FROM recipients WHERE message_id = ? ORDER BY address', [id]);
  const summary: MessageSummary = row
    ? toSummary(row)
    : { id, receivedAt: iso(events[0].at), mailFrom: '', recipients: [], size: 0, client: '', source: '', status: 'unknown', updatedAt: iso(events[events.length - 1].at) };
  return { ...summary, recipientStatus: rcpts.map((r) => ({ address: String(r.address), status: opt(r.status) })), timeline: events.map(toTimeline) };
}

/**
 * The full id for an id or a unique start of one (as the queue commands take it); undefined when
 * none matches; SH_USAGE naming the matches when several do. Only id characters are looked up with
 * LIKE, so nothing the admin types is a pattern.
 */
async function resolveHistoryId(db: HistoryBackend, given: string): Promise<string | undefined> {
  const [exact] = await db.query('SELECT id FROM messages WHERE id = ?', [given]);
  if (exact || !/^[0-9A-Za-z-]+$/.test(given)) return given;
  const rows = await db.query('SELECT id FROM messages WHERE id LIKE ? ORDER BY id LIMIT 11', [`${given}%`]);
  const ids = rows.map((r) => String(r.id)).filter((id) => id.startsWith(given));
  return resolveIdPrefix(given, ids.slice(0, 10), ids.length > 10) ?? given;
}

/** Distinct messages per bucket that were accepted, delivered, deferred or failed (attempt or state). */
export async function statsSince(db: HistoryBackend, since: number, until: number, bucketMs: number): Promise<StatsBucket[]> {
  const rows = await db.query(
    `SELECT CAST((at - ?) / ? AS BIGINT) AS bucket,
       CASE WHEN kind = 'accepted' THEN 'accepted'
            WHEN action = 'delivered' OR action = 'relayed' THEN 'delivered'
            WHEN action = 'delayed' OR action = 'deferred' THEN 'deferred'
            ELSE 'failed' END AS category,
       COUNT(DISTINCT message_id) AS n
     FROM events
     WHERE at >= ? AND at < ? AND (kind = 'accepted' OR (kind IN ('attempt', 'state') AND action IN ('delivered', 'relayed', 'delayed', 'deferred', 'failed', 'badmail')))
     GROUP BY 1, 2`,
    [since, bucketMs, since, until],
  );
  const count = Math.max(1, Math.ceil((until - since) / bucketMs));
  const buckets: StatsBucket[] = Array.from({ length: count }, (_, i) => ({ start: iso(since + i * bucketMs), accepted: 0, delivered: 0, deferred: 0, failed: 0 }));
  for (const r of rows) {
    const b = buckets[Math.floor(Number(r.bucket))];
    const cat = String(r.category) as 'accepted' | 'delivered' | 'deferred' | 'failed';
    if (b) b[cat] += Number(r.n);
  }
  return buckets;
}

export async function recentErrors(db: HistoryBackend, limit: number): Promise<RecentError[]> {
  const rows = await db.query(
    "SELECT * FROM events WHERE kind = 'attempt' AND action IN ('failed', 'delayed') ORDER BY at DESC, seq DESC LIMIT ?",
    [Math.min(Math.max(limit, 1), 100)],
  );
  return rows.map((r) => ({
    at: iso(r.at), id: String(r.message_id), recipient: opt(r.recipient), action: String(r.action),
    diagnostic: opt(r.diagnostic), reason: opt(r.reason), upstream: opt(r.upstream),
  }));
}

/** Deletes messages received before `cutoff`, in bounded chunks; returns how many went. */
export async function purgeBefore(db: HistoryBackend, cutoff: number, chunk = 5000, maxRounds = 400): Promise<number> {
  const pick = 'SELECT id FROM messages WHERE received_at < ? ORDER BY received_at, id LIMIT ?';
  let removed = 0;
  for (let round = 0; round < maxRounds; round++) {
    await db.run(`DELETE FROM recipients WHERE message_id IN (${pick})`, [cutoff, chunk]);
    await db.run(`DELETE FROM events WHERE message_id IN (${pick})`, [cutoff, chunk]);
    const n = await db.run(`DELETE FROM messages WHERE id IN (${pick})`, [cutoff, chunk]);
    removed += n;
    if (n < chunk) break;
  }
  await db.run("DELETE FROM events WHERE kind = 'upstream' AND at < ?", [cutoff]);
  return removed;
}

/** Which of these ids have a message row (chunks of 500 placeholders). */
export async function knownIds(db: HistoryBackend, ids: string[]): Promise<Set<string>> {
  const known = new Set<string>();
  for (let i = 0; i < ids.length; i += 500) {
    const chunk = ids.slice(i, i + 500);
    const rows = await db.query(`SELECT id FROM messages WHERE id IN (${chunk.map(() => '?').join(', ')})`, chunk);
    for (const r of rows) known.add(String(r.id));
  }
  return known;
}

/** Sets each message's status to its latest recorded state event, where it has one. */
export async function statusFromEvents(db: HistoryBackend, ids: string[]): Promise<void> {
  for (let i = 0; i < ids.length; i += 500) {
    const chunk = ids.slice(i, i + 500);
    await db.run(
      `UPDATE messages SET status = COALESCE((SELECT e.action FROM events e WHERE e.message_id = messages.id AND e.kind = 'state'
         ORDER BY e.at DESC, e.seq DESC LIMIT 1), status) WHERE id IN (${chunk.map(() => '?').join(', ')})`,
      chunk,
    );
  }
}
