/**
 * SQLite history backend through Node's built-in `node:sqlite` (no server, no native addon).
 *
 * The database is one file (mailroot/history.sqlite) in WAL mode, so the console's reads never
 * wait for the recorder's writes. synchronous=NORMAL: a power cut may lose the last batch of
 * history, never mail — the spool is the truth. Each batch is one transaction; on any error it
 * is rolled back and the error goes to the recorder, which keeps the batch and retries.
 */
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { BatchPlan } from './plan.ts';
import { INSERT_EVENT, INSERT_MESSAGE, INSERT_RECIPIENT, UPDATE_MESSAGE, UPDATE_RECIPIENT, schemaStatements, type HistoryBackend } from './sql.ts';

type SqlValue = string | number | null;

export function openSqliteBackend(file: string): HistoryBackend {
  let db: DatabaseSync | undefined;
  const cache = new Map<string, StatementSync>();
  const prepared = (sql: string): StatementSync => {
    if (!db) throw new Error('history database is closed');
    let s = cache.get(sql);
    if (!s) {
      s = db.prepare(sql);
      cache.set(sql, s);
    }
    return s;
  };

  return {
    kind: 'sqlite',
    async init() {
      if (db) return;
      if (file !== ':memory:') mkdirSync(path.dirname(file), { recursive: true });
      const opened = new DatabaseSync(file);
      try {
        opened.exec('PRAGMA journal_mode = WAL');
        opened.exec('PRAGMA synchronous = NORMAL');
        opened.exec('PRAGMA busy_timeout = 2000');
        for (const stmt of schemaStatements('sqlite')) opened.exec(stmt);
      } catch (err) {
        opened.close();
        throw err;
      }
      db = opened;
    },
    async write(plan: BatchPlan) {
      if (!db) throw new Error('history database is not open');
      db.exec('BEGIN IMMEDIATE');
      try {
        const m = prepared(INSERT_MESSAGE);
        for (const r of plan.messages) m.run(r.id, r.receivedAt, r.mailFrom, r.subject, r.size, r.client, r.source, r.upstream, r.headerFrom, r.recipients, r.status, r.updatedAt);
        const rc = prepared(INSERT_RECIPIENT);
        for (const r of plan.recipients) rc.run(r.messageId, r.address, r.domain, r.receivedAt);
        const ev = prepared(INSERT_EVENT);
        for (const e of plan.events) ev.run(e.messageId, e.at, e.kind, e.upstream, e.recipient, e.action, e.status, e.replyCode, e.diagnostic, e.reason, e.durationMs, e.possibleDuplicate);
        const mu = prepared(UPDATE_MESSAGE);
        for (const u of plan.messageUpdates) mu.run(u.status, u.reason, u.upstream, u.updatedAt, u.id);
        const ru = prepared(UPDATE_RECIPIENT);
        for (const u of plan.recipientUpdates) ru.run(u.status, u.messageId, u.address);
        db.exec('COMMIT');
      } catch (err) {
        try {
          db.exec('ROLLBACK');
        } catch {
          // The transaction may already be gone (disk full aborts it); the original error matters.
        }
        throw err;
      }
    },
    async query(sql, params = []) {
      return prepared(sql).all(...(params as SqlValue[])) as Record<string, unknown>[];
    },
    async run(sql, params = []) {
      return Number(prepared(sql).run(...(params as SqlValue[])).changes);
    },
    async close() {
      cache.clear();
      db?.close();
      db = undefined;
    },
  };
}
