/**
 * The SQLite history database itself, synchronous (node:sqlite's DatabaseSync). It runs only inside
 * the history worker thread (sqlite-worker.ts), never on the relay's event loop.
 *
 * The database is one file (mailroot/history.sqlite) in WAL mode, so the console's reads never
 * wait for the recorder's writes. synchronous=NORMAL: a power cut may lose the last batch of
 * history, never mail — the spool is the truth. Each batch is one transaction; on any error it
 * is rolled back and the error is thrown to the caller (the recorder keeps the batch and retries).
 */
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { BatchPlan } from './plan.ts';
import { INSERT_EVENT, INSERT_MESSAGE, INSERT_RECIPIENT, UPDATE_MESSAGE, UPDATE_RECIPIENT, migrationStatements, schemaStatements } from './sql.ts';

type SqlValue = string | number | null;

export class SqliteHistoryDb {
  private db: DatabaseSync | undefined;
  private cache = new Map<string, StatementSync>();
  private readonly file: string;

  constructor(file: string) {
    this.file = file;
  }

  private prepared(sql: string): StatementSync {
    if (!this.db) throw new Error('history database is not open');
    let s = this.cache.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.cache.set(sql, s);
    }
    return s;
  }

  init(): void {
    if (this.db) return;
    if (this.file !== ':memory:') mkdirSync(path.dirname(this.file), { recursive: true });
    const opened = new DatabaseSync(this.file);
    try {
      opened.exec('PRAGMA journal_mode = WAL');
      opened.exec('PRAGMA synchronous = NORMAL');
      opened.exec('PRAGMA busy_timeout = 2000');
      for (const stmt of schemaStatements('sqlite')) opened.exec(stmt);
      for (const stmt of migrationStatements('sqlite')) {
        try {
          opened.exec(stmt);
        } catch (err) {
          if (!/duplicate column/i.test((err as Error).message)) throw err;
        }
      }
    } catch (err) {
      opened.close();
      throw err;
    }
    this.db = opened;
  }

  write(plan: BatchPlan): void {
    const db = this.db;
    if (!db) throw new Error('history database is not open');
    db.exec('BEGIN IMMEDIATE');
    try {
      const m = this.prepared(INSERT_MESSAGE);
      for (const r of plan.messages) m.run(r.id, r.receivedAt, r.mailFrom, r.subject, r.size, r.client, r.source, r.upstream, r.headerFrom, r.recipients, r.status, r.updatedAt, r.route);
      const rc = this.prepared(INSERT_RECIPIENT);
      for (const r of plan.recipients) rc.run(r.messageId, r.address, r.domain, r.receivedAt);
      const ev = this.prepared(INSERT_EVENT);
      for (const e of plan.events) ev.run(e.messageId, e.at, e.kind, e.upstream, e.recipient, e.action, e.status, e.replyCode, e.diagnostic, e.reason, e.durationMs, e.possibleDuplicate);
      const mu = this.prepared(UPDATE_MESSAGE);
      for (const u of plan.messageUpdates) mu.run(u.status, u.reason, u.upstream, u.updatedAt, u.id);
      const ru = this.prepared(UPDATE_RECIPIENT);
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
  }

  query(sql: string, params: unknown[] = []): Record<string, unknown>[] {
    return this.prepared(sql).all(...(params as SqlValue[])) as Record<string, unknown>[];
  }

  run(sql: string, params: unknown[] = []): number {
    return Number(this.prepared(sql).run(...(params as SqlValue[])).changes);
  }

  close(): void {
    this.cache.clear();
    this.db?.close();
    this.db = undefined;
  }
}
