/**
 * The history schema and the backend contract, written once for SQLite and PostgreSQL.
 *
 * Times are integer milliseconds since the epoch (BIGINT), addresses are stored lower-case,
 * and recipients live in their own table (message_id, address, domain, received_at) with an index
 * on (address, received_at, message_id), so "where did mail to X go?" is an index range scan even
 * on a year of mail. Statements use `?` placeholders; the PostgreSQL backend numbers them.
 */
import type { QueueEvent } from '../core/types.ts';
import type { BatchPlan } from './plan.ts';

export type Dialect = 'sqlite' | 'postgres';

/** What the query layer needs of a store; both backends implement it. */
export interface HistoryBackend {
  readonly kind: Dialect;
  /** Creates tables and indexes if missing; safe to call again after a failure. */
  init(): Promise<void>;
  /** Writes one batch in one transaction: all of it or none of it. */
  write(plan: BatchPlan): Promise<void>;
  /** Optional: plans and writes a batch of events in one transaction where the store runs (a worker). */
  writeEvents?(events: readonly QueueEvent[]): Promise<void>;
  query(sql: string, params?: unknown[]): Promise<Record<string, unknown>[]>;
  /** Runs a statement; resolves with the number of rows it changed. */
  run(sql: string, params?: unknown[]): Promise<number>;
  close(): Promise<void>;
}

export function schemaStatements(dialect: Dialect): string[] {
  const seq = dialect === 'sqlite' ? 'seq INTEGER PRIMARY KEY AUTOINCREMENT' : 'seq BIGSERIAL PRIMARY KEY';
  return [
    `CREATE TABLE IF NOT EXISTS messages (
      id TEXT PRIMARY KEY, received_at BIGINT NOT NULL, mail_from TEXT NOT NULL, subject TEXT, size BIGINT NOT NULL DEFAULT 0,
      client TEXT NOT NULL DEFAULT '', source TEXT NOT NULL DEFAULT '', upstream TEXT, header_from TEXT,
      recipients TEXT NOT NULL DEFAULT '[]', status TEXT NOT NULL, reason TEXT, updated_at BIGINT NOT NULL, route TEXT)`,
    'CREATE INDEX IF NOT EXISTS messages_received ON messages (received_at, id)',
    'CREATE INDEX IF NOT EXISTS messages_from ON messages (mail_from, received_at, id)',
    'CREATE INDEX IF NOT EXISTS messages_client ON messages (client, received_at, id)',
    'CREATE INDEX IF NOT EXISTS messages_status ON messages (status, received_at, id)',
    `CREATE TABLE IF NOT EXISTS recipients (
      message_id TEXT NOT NULL, address TEXT NOT NULL, domain TEXT NOT NULL, received_at BIGINT NOT NULL, status TEXT,
      PRIMARY KEY (message_id, address))`,
    'CREATE INDEX IF NOT EXISTS recipients_address ON recipients (address, received_at, message_id)',
    'CREATE INDEX IF NOT EXISTS recipients_domain ON recipients (domain, received_at, message_id)',
    `CREATE TABLE IF NOT EXISTS events (
      ${seq}, message_id TEXT NOT NULL, at BIGINT NOT NULL, kind TEXT NOT NULL, upstream TEXT, recipient TEXT,
      action TEXT, status TEXT, reply_code INTEGER, diagnostic TEXT, reason TEXT, duration_ms INTEGER,
      possible_duplicate INTEGER NOT NULL DEFAULT 0)`,
    'CREATE INDEX IF NOT EXISTS events_message ON events (message_id, at)',
    'CREATE INDEX IF NOT EXISTS events_kind_at ON events (kind, at)',
  ];
}

/**
 * Columns added after a store was first created: applied one by one at init, an error meaning
 * "already there" ignored (SQLite has no ADD COLUMN IF NOT EXISTS).
 */
export function migrationStatements(dialect: Dialect): string[] {
  return [dialect === 'postgres' ? 'ALTER TABLE messages ADD COLUMN IF NOT EXISTS route TEXT' : 'ALTER TABLE messages ADD COLUMN route TEXT'];
}

export const INSERT_MESSAGE = `INSERT INTO messages (id, received_at, mail_from, subject, size, client, source, upstream, header_from, recipients, status, updated_at, route)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
  ON CONFLICT (id) DO UPDATE SET received_at = excluded.received_at, mail_from = excluded.mail_from, subject = excluded.subject,
    size = excluded.size, client = excluded.client, source = excluded.source, header_from = excluded.header_from, recipients = excluded.recipients,
    route = excluded.route`;

export const INSERT_RECIPIENT = `INSERT INTO recipients (message_id, address, domain, received_at) VALUES (?, ?, ?, ?)
  ON CONFLICT (message_id, address) DO NOTHING`;

export const INSERT_EVENT = `INSERT INTO events (message_id, at, kind, upstream, recipient, action, status, reply_code, diagnostic, reason, duration_ms, possible_duplicate)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`;

export const UPDATE_MESSAGE = `UPDATE messages SET status = COALESCE(?, status), reason = COALESCE(?, reason),
  upstream = COALESCE(?, upstream), updated_at = ? WHERE id = ?`;

export const UPDATE_RECIPIENT = 'UPDATE recipients SET status = ? WHERE message_id = ? AND address = ?';

/** Escapes LIKE wildcards so a subject search for "50%" means the text "50%". */
export function likePattern(text: string): string {
  return `%${text.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}
