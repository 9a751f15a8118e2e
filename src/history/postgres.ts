/**
 * PostgreSQL history backend (the `pg` driver), for several relays sharing one history and one
 * console behind a load balancer.
 *
 * Each batch is one transaction of five statements at most: rows travel as arrays and are
 * expanded with unnest(), so a batch of 500 events costs a handful of round trips, not 1,500.
 * Schema creation takes an advisory lock, so two relays starting together do not race.
 * A server that is down makes write() reject (after connectionTimeoutMillis); the recorder keeps
 * the batch and retries. Pool errors from idle connections are swallowed here on purpose: the
 * next write reports them.
 */
import type pg from 'pg';
import type { BatchPlan } from './plan.ts';
import { migrationStatements, schemaStatements, type HistoryBackend } from './sql.ts';

const SCHEMA_LOCK = 0x5348_4953; // "SHIS": any fixed number shared by all relays

/** `?` placeholders → `$1, $2, …` (our statements hold no literal question marks). */
export function numberPlaceholders(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

export function openPostgresBackend(url: string): HistoryBackend {
  // The driver is loaded on first use, so a relay with SQLite history (the default) never loads it.
  let created: Promise<pg.Pool> | undefined;
  const getPool = (): Promise<pg.Pool> => (created ??= import('pg').then(({ default: driver }) => {
    const pool = new driver.Pool({ connectionString: url, max: 4, connectionTimeoutMillis: 3000, idleTimeoutMillis: 30_000 });
    pool.on('error', () => {});
    // A server stopping mid-query makes the busy client emit 'error' too; the query's rejection reports it.
    pool.on('connect', (client) => client.on('error', () => {}));
    return pool;
  }));
  let ready = false;

  async function inTransaction(work: (client: pg.PoolClient) => Promise<void>): Promise<void> {
    const client = await (await getPool()).connect();
    try {
      await client.query('BEGIN');
      await work(client);
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      client.release();
    }
  }

  return {
    kind: 'postgres',
    async init() {
      if (ready) return;
      await inTransaction(async (c) => {
        await c.query('SELECT pg_advisory_xact_lock($1)', [SCHEMA_LOCK]);
        for (const stmt of [...schemaStatements('postgres'), ...migrationStatements('postgres')]) await c.query(stmt);
      });
      ready = true;
    },
    async write(plan: BatchPlan) {
      await inTransaction(async (c) => {
        const m = plan.messages;
        if (m.length) {
          await c.query(
            `INSERT INTO messages (id, received_at, mail_from, subject, size, client, source, upstream, header_from, recipients, status, updated_at, route)
             SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::bigint[], $13::text[])
             ON CONFLICT (id) DO UPDATE SET received_at = excluded.received_at, mail_from = excluded.mail_from, subject = excluded.subject,
               size = excluded.size, client = excluded.client, source = excluded.source, header_from = excluded.header_from, recipients = excluded.recipients,
               route = excluded.route`,
            [m.map((r) => r.id), m.map((r) => r.receivedAt), m.map((r) => r.mailFrom), m.map((r) => r.subject), m.map((r) => r.size), m.map((r) => r.client),
              m.map((r) => r.source), m.map((r) => r.upstream), m.map((r) => r.headerFrom), m.map((r) => r.recipients), m.map((r) => r.status), m.map((r) => r.updatedAt), m.map((r) => r.route)],
          );
        }
        const r = plan.recipients;
        if (r.length) {
          await c.query(
            `INSERT INTO recipients (message_id, address, domain, received_at)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) ON CONFLICT (message_id, address) DO NOTHING`,
            [r.map((x) => x.messageId), r.map((x) => x.address), r.map((x) => x.domain), r.map((x) => x.receivedAt)],
          );
        }
        const e = plan.events;
        if (e.length) {
          await c.query(
            `INSERT INTO events (message_id, at, kind, upstream, recipient, action, status, reply_code, diagnostic, reason, duration_ms, possible_duplicate)
             SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::int[], $9::text[], $10::text[], $11::int[], $12::int[])`,
            [e.map((x) => x.messageId), e.map((x) => x.at), e.map((x) => x.kind), e.map((x) => x.upstream), e.map((x) => x.recipient), e.map((x) => x.action),
              e.map((x) => x.status), e.map((x) => x.replyCode), e.map((x) => x.diagnostic), e.map((x) => x.reason), e.map((x) => x.durationMs), e.map((x) => x.possibleDuplicate)],
          );
        }
        const u = plan.messageUpdates;
        if (u.length) {
          await c.query(
            `UPDATE messages m SET status = COALESCE(v.status, m.status), reason = COALESCE(v.reason, m.reason),
               upstream = COALESCE(v.upstream, m.upstream), updated_at = v.updated_at
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[]) AS v(id, status, reason, upstream, updated_at)
             WHERE m.id = v.id`,
            [u.map((x) => x.id), u.map((x) => x.status), u.map((x) => x.reason), u.map((x) => x.upstream), u.map((x) => x.updatedAt)],
          );
        }
        const ru = plan.recipientUpdates;
        if (ru.length) {
          await c.query(
            `UPDATE recipients r SET status = v.status FROM unnest($1::text[], $2::text[], $3::text[]) AS v(message_id, address, status)
             WHERE r.message_id = v.message_id AND r.address = v.address`,
            [ru.map((x) => x.messageId), ru.map((x) => x.address), ru.map((x) => x.status)],
          );
        }
      });
    },
    async query(sql, params = []) {
      return (await (await getPool()).query(numberPlaceholders(sql), params)).rows;
    },
    async run(sql, params = []) {
      return (await (await getPool()).query(numberPlaceholders(sql), params)).rowCount ?? 0;
    },
    async close() {
      if (created) await (await created).end().catch(() => {});
    },
  };
}
