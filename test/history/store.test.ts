// History on both backends with the same test body: SQLite (always) and a real PostgreSQL
// server started from Debian's package (skipped, saying why, only when it is not installed).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ManualClock } from '../../src/core/clock.ts';
import type { Envelope } from '../../src/core/types.ts';
import { silentLogger } from '../../src/core/logger.ts';
import { openHistory, type HistoryStore } from '../../src/history/index.ts';
import type { HistoryConfig } from '../../src/config/sections/misc.ts';
import { startPostgres, findPgBin, type PgServer } from './pg-server.ts';
import { accepted, attempt, state } from './events.ts';

const DAY = 86_400_000;

function historyBody(name: string, open: (clock: ManualClock) => HistoryStore, skip?: string): void {
  describe(`history on ${name}`, { skip }, () => {
    test('records a message, its attempts and states, and finds it every way', async () => {
      const clock = new ManualClock();
      const h = open(clock);
      try {
        const t0 = clock.now() - 3_600_000;
        h.record(accepted('m1', t0, 'Scanner@Office.example', ['Alice@Example.com', 'bob@example.com'], { subject: 'Scan 50% done', client: '192.0.2.50' }));
        h.record(accepted('m2', t0 + 1000, 'printer@office.example', ['carol@other.example'], { subject: 'Invoice' }));
        h.record(attempt('m1', t0 + 2000, [
          { recipient: 'alice@example.com', action: 'delivered', status: '2.0.0', replyCode: 250, diagnostic: '250 2.0.0 OK queued' },
          { recipient: 'bob@example.com', action: 'delayed', status: '4.4.1', diagnostic: '421 4.4.1 try later', reason: 'the upstream is busy; we will retry' },
        ]));
        h.record(state('m1', t0 + 2001, 'deferred', 'bob@example.com: the upstream is busy; we will retry'));
        h.record(attempt('m2', t0 + 3000, [{ recipient: 'carol@other.example', action: 'failed', status: '5.7.1', replyCode: 550, diagnostic: '550 5.7.1 Client does not have permissions to send as this sender', reason: 'needs Send As' }]));
        h.record(state('m2', t0 + 3001, 'badmail', 'needs Send As'));
        await h.flush();
        assert.equal(h.health().ok, true);
        assert.equal(h.health().written, 6);

        const byRcpt = await h.search({ recipient: 'ALICE@example.com' });
        assert.deepEqual(byRcpt.messages.map((m) => m.id), ['m1']);
        assert.deepEqual(byRcpt.messages[0].recipients, ['alice@example.com', 'bob@example.com']);
        assert.equal(byRcpt.messages[0].status, 'deferred');
        assert.equal((await h.search({ recipient: '@example.com' })).messages.length, 1);
        assert.deepEqual((await h.search({ sender: 'printer@office.example' })).messages.map((m) => m.id), ['m2']);
        // Part of an address finds it, and says what matched; a part in no address finds nothing.
        const part = await h.search({ recipient: 'ALIC' });
        assert.deepEqual(part.messages.map((m) => m.id), ['m1']);
        assert.equal(part.messages[0].matchedRecipient, 'alice@example.com');
        assert.equal(part.matched, 'messages with a recipient containing "alic"');
        assert.deepEqual((await h.search({ recipient: 'other.ex' })).messages.map((m) => m.id), ['m2']);
        assert.deepEqual((await h.search({ recipient: 'zed' })).messages.map((m) => m.id), []);
        assert.deepEqual((await h.search({ recipient: 'a%' })).messages.map((m) => m.id), [], 'LIKE wildcards are literal in addresses too');
        assert.deepEqual((await h.search({ sender: 'scanner' })).messages.map((m) => m.id), ['m1']);
        assert.match((await h.search({ sender: 'scanner', subject: 'scan' })).matched ?? '', /sender containing "scanner" and a subject containing "scan"/);
        assert.deepEqual((await h.search({ subject: '50%' })).messages.map((m) => m.id), ['m1']);
        assert.deepEqual((await h.search({ subject: '0%d' })).messages.map((m) => m.id), [], 'LIKE wildcards are literal');
        assert.deepEqual((await h.search({ client: '192.0.2.50' })).messages.map((m) => m.id), ['m1']);
        assert.deepEqual((await h.search({ status: 'badmail' })).messages.map((m) => m.id), ['m2']);
        assert.deepEqual((await h.search({ from: new Date(t0 + 500) })).messages.map((m) => m.id), ['m2']);
        assert.deepEqual((await h.search({ to: new Date(t0 + 500) })).messages.map((m) => m.id), ['m1']);
        assert.deepEqual((await h.search({})).messages.map((m) => m.id), ['m2', 'm1'], 'newest first');

        const m2 = await h.get('m2');
        assert.ok(m2);
        assert.equal(m2.status, 'badmail');
        assert.equal(m2.reason, 'needs Send As');
        assert.deepEqual(m2.timeline.map((e) => `${e.kind}:${e.action}`), ['accepted:accepted', 'attempt:failed', 'state:badmail']);
        assert.equal(m2.timeline[1].replyCode, 550);
        assert.match(m2.timeline[1].diagnostic ?? '', /Send as/i);
        const m1 = await h.get('m1');
        assert.deepEqual(m1?.recipientStatus, [{ address: 'alice@example.com', status: 'delivered' }, { address: 'bob@example.com', status: 'delayed' }]);
        assert.equal(await h.get('nope'), undefined);

        const errors = await h.recentErrors(5);
        assert.deepEqual(errors.map((e) => `${e.id}:${e.action}`), ['m2:failed', 'm1:delayed']);
        const buckets = await h.stats(new Date(t0 - 60_000), 3_600_000);
        const sum = (k: 'accepted' | 'delivered' | 'deferred' | 'failed'): number => buckets.reduce((n, b) => n + b[k], 0);
        assert.deepEqual([sum('accepted'), sum('delivered'), sum('deferred'), sum('failed')], [2, 1, 1, 1]);
      } finally {
        await h.close();
      }
    });

    test('pages with a cursor through many messages, each exactly once', async () => {
      const clock = new ManualClock();
      const h = open(clock);
      try {
        const t0 = clock.now() - DAY;
        for (let i = 0; i < 1203; i++) h.record(accepted(`p${String(i).padStart(5, '0')}`, t0 + Math.floor(i / 3) * 1000, `dev${i % 7}@office.example`, [`user${i % 10}@example.com`]));
        await h.flush();
        const seen: string[] = [];
        let cursor: string | undefined;
        for (let page = 0; page < 50; page++) {
          const r = await h.search({ recipient: 'user3@example.com', limit: 17, cursor });
          seen.push(...r.messages.map((m) => m.id));
          cursor = r.next;
          if (!cursor) break;
        }
        assert.equal(seen.length, 120);
        assert.equal(new Set(seen).size, 120);
        assert.ok(seen.every((id) => Number(id.slice(1)) % 10 === 3));
      } finally {
        await h.close();
      }
    });

    test('reconcile: messages whose accepted event was lost are added with the state already recorded', async () => {
      const clock = new ManualClock();
      const h = open(clock);
      try {
        const t0 = clock.now() - 60_000;
        h.record(accepted('known', t0, 'a@x.example', ['r@y.example']));
        h.record(attempt('lost', t0 + 10, [{ recipient: 'r@y.example', action: 'delivered', status: '2.0.0' }]));
        h.record(state('lost', t0 + 11, 'delivered'));
        await h.flush();
        assert.deepEqual((await h.search({ recipient: 'r@y.example' })).messages.map((m) => m.id), ['known'], 'the lost one is not findable yet');
        const env = (accepted('lost', t0, 'b@x.example', ['r@y.example'], { subject: 'Recovered' }) as { envelope: Envelope }).envelope;
        const knownEnv = (accepted('known', t0, 'a@x.example', ['r@y.example']) as { envelope: Envelope }).envelope;
        assert.equal(await h.reconcile([{ id: 'lost', envelope: env }, { id: 'known', envelope: knownEnv }]), 1);
        const found = await h.search({ recipient: 'r@y.example' });
        assert.deepEqual(found.messages.map((m) => `${m.id}:${m.status}`).sort(), ['known:queued', 'lost:delivered']);
        assert.equal((await h.get('known'))!.timeline.filter((e) => e.kind === 'accepted').length, 1, 'no second accepted for a known message');
        assert.equal(await h.reconcile([{ id: 'lost', envelope: env }]), 0);
      } finally {
        await h.close();
      }
    });

    test('retention removes what is older than the configured period', async () => {
      const clock = new ManualClock();
      const h = open(clock);
      try {
        h.record(accepted('old', clock.now() - 10 * DAY, 'a@x.example', ['b@y.example']));
        h.record(state('old', clock.now() - 10 * DAY + 5, 'delivered'));
        h.record(accepted('new', clock.now() - DAY, 'a@x.example', ['b@y.example']));
        await h.flush();
        assert.equal(await h.purge(), 1, 'retention is 7 days in this test');
        assert.deepEqual((await h.search({ recipient: 'b@y.example' })).messages.map((m) => m.id), ['new']);
        assert.equal(await h.get('old'), undefined);
      } finally {
        await h.close();
      }
    });

    test('filters by route (routing); a split message is found under each of its routes', async () => {
      const clock = new ManualClock();
      const h = open(clock);
      try {
        const t0 = clock.now() - 60_000;
        const routed = (id: string, route: string | undefined, i: number) => {
          const e = accepted(id, t0 + i, 'scan@contoso.com', ['a@x.example']);
          return e.type === 'accepted' ? { ...e, envelope: { ...e.envelope, route } } : e;
        };
        h.record(routed('r1', 'contoso', 1));
        h.record(routed('r2', 'contoso,fabrikam', 2));
        h.record(routed('r3', 'contoso-old', 3));
        h.record(routed('r4', undefined, 4));
        await h.flush();
        assert.deepEqual((await h.search({ route: 'contoso' })).messages.map((m) => m.id), ['r2', 'r1'], 'whole names only');
        assert.deepEqual((await h.search({ route: 'fabrikam' })).messages.map((m) => m.id), ['r2']);
        assert.deepEqual((await h.search({ route: 'contoso_old' })).messages.map((m) => m.id), [], '_ is literal');
        assert.equal((await h.get('r2'))?.route, 'contoso,fabrikam');
      } finally {
        await h.close();
      }
    });
  });
}

test('a SQLite history created before routes gets the route column when opened', async () => {
  const { DatabaseSync } = await import('node:sqlite');
  const dir = path.join(tmp, 'old-schema');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'history.sqlite');
  const old = new DatabaseSync(file);
  old.exec(`CREATE TABLE messages (id TEXT PRIMARY KEY, received_at BIGINT NOT NULL, mail_from TEXT NOT NULL, subject TEXT, size BIGINT NOT NULL DEFAULT 0,
    client TEXT NOT NULL DEFAULT '', source TEXT NOT NULL DEFAULT '', upstream TEXT, header_from TEXT,
    recipients TEXT NOT NULL DEFAULT '[]', status TEXT NOT NULL, reason TEXT, updated_at BIGINT NOT NULL)`);
  old.exec(`INSERT INTO messages (id, received_at, mail_from, status, updated_at) VALUES ('before', ${Date.now()}, 'a@b.c', 'delivered', ${Date.now()})`);
  old.close();
  const h = openHistory(cfg({}, dir), { logger: silentLogger(), clock: new ManualClock(), purgeEveryMs: 0 });
  try {
    const e = accepted('after', Date.now(), 'scan@contoso.com', ['a@x.example']);
    h.record(e.type === 'accepted' ? { ...e, envelope: { ...e.envelope, route: 'contoso' } } : e);
    await h.flush();
    assert.equal(h.health().ok, true, JSON.stringify(h.health()));
    assert.deepEqual((await h.search({ route: 'contoso' })).messages.map((m) => m.id), ['after']);
    assert.equal((await h.get('before'))?.status, 'delivered', 'old rows still read');
  } finally {
    await h.close();
  }
});

const cfg = (over: Partial<HistoryConfig>, mailrootPath: string): { history: HistoryConfig; mailrootPath: string } => ({
  history: { store: 'sqlite', retention: 7 * DAY, ...over }, mailrootPath,
});

const tmp = mkdtempSync(path.join(os.tmpdir(), 'smarthost-history-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
let dbCount = 0;
historyBody('SQLite', (clock) => openHistory(cfg({}, path.join(tmp, `s${dbCount++}`)), { logger: silentLogger(), clock, purgeEveryMs: 0 }));

let pg: PgServer | undefined;
const pgSkip = findPgBin() ? undefined : 'PostgreSQL is not installed (Debian package postgresql): cannot run the PostgreSQL half';
before(async () => {
  if (!pgSkip) pg = await startPostgres();
});
after(() => pg?.stop());
let pgDb = 0;
historyBody('PostgreSQL', (clock) => {
  // Each test gets its own schema-less database, so tests do not see each other's rows.
  const name = `h${pgDb++}`;
  const url = `${pg!.url.replace(/\/postgres$/, '')}/${name}`;
  const store = openHistory(cfg({ store: 'postgres', postgresUrl: url }, tmp), { logger: silentLogger(), clock, purgeEveryMs: 0 });
  return withDatabase(store, pg!.url, name);
}, pgSkip);

/** Creates database `name` before the store's first use. */
function withDatabase(store: HistoryStore, adminUrl: string, name: string): HistoryStore {
  let created: Promise<void> | undefined;
  const ensure = (): Promise<void> => (created ??= (async () => {
    const pgmod = (await import('pg')).default;
    const c = new pgmod.Client({ connectionString: adminUrl });
    await c.connect();
    await c.query(`CREATE DATABASE ${name}`);
    await c.end();
  })());
  const wrap = <A extends unknown[], R>(fn: (...a: A) => Promise<R>) => async (...a: A): Promise<R> => {
    await ensure();
    return fn(...a);
  };
  return { ...store, record: (e) => store.record(e), flush: wrap(store.flush), search: wrap(store.search), get: wrap(store.get), stats: wrap(store.stats), recentErrors: wrap(store.recentErrors), purge: wrap(store.purge), reconcile: wrap(store.reconcile) };
}
