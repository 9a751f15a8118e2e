// A history store that is down or full never delays or refuses mail: record() returns at once,
// events wait in a bounded backlog, are written when the store is back, and what had to be
// dropped is counted and said. Shown with a real SQLite store behind a switch, and with a real
// PostgreSQL server stopped and started again.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ManualClock } from '../../src/core/clock.ts';
import { silentLogger } from '../../src/core/logger.ts';
import { openHistory } from '../../src/history/index.ts';
import { openSqliteBackend } from '../../src/history/sqlite.ts';
import type { HistoryBackend } from '../../src/history/sql.ts';
import { findPgBin, startPostgres } from './pg-server.ts';
import { accepted } from './events.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'smarthost-recorder-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** A real SQLite backend whose writes fail while `down` is true, as a full disk would. */
function switchable(file: string): HistoryBackend & { down: boolean; writes: number } {
  const real = openSqliteBackend(file);
  const b = {
    kind: real.kind, down: false, writes: 0,
    init: () => real.init(),
    write: async (plan: Parameters<HistoryBackend['write']>[0]) => {
      b.writes++;
      if (b.down) throw new Error('database or disk is full');
      return real.write(plan);
    },
    query: real.query, run: real.run, close: real.close,
  };
  return b;
}

const config = (mailrootPath: string) => ({ history: { store: 'sqlite' as const, retention: 86_400_000 }, mailrootPath });

test('batches writes: many record() calls become few transactions', async () => {
  const backend = switchable(path.join(tmp, 'batch.sqlite'));
  const h = openHistory(config(tmp), { logger: silentLogger(), clock: new ManualClock(), backend, purgeEveryMs: 0, recorder: { batchMs: 50, batchSize: 500 } });
  const t = Date.now();
  for (let i = 0; i < 2000; i++) h.record(accepted(`b${i}`, t, 'a@x.example', ['b@y.example']));
  assert.equal(backend.writes, 0, 'record() wrote nothing synchronously');
  await h.flush();
  assert.ok(backend.writes >= 1 && backend.writes <= 4, `2000 events in ${backend.writes} transactions`);
  assert.equal(h.health().written, 2000);
  assert.equal((await h.search({ recipient: 'b@y.example', limit: 500 })).messages.length, 500);
  await h.close();
});

test('a store that fails keeps a bounded backlog, catches up, and counts what it missed', async () => {
  const backend = switchable(path.join(tmp, 'down.sqlite'));
  const h = openHistory(config(tmp), { logger: silentLogger(), clock: new ManualClock(), backend, purgeEveryMs: 0, recorder: { batchMs: 10, batchSize: 100, maxBacklog: 1000, retryMs: 20, maxRetryMs: 40 } });
  backend.down = true;
  const t = Date.now();
  const started = process.hrtime.bigint();
  for (let i = 0; i < 500; i++) h.record(accepted(`d${i}`, t + i, 'a@x.example', ['c@y.example']));
  await h.flush();
  let health = h.health();
  assert.equal(health.ok, false);
  assert.equal(health.pending, 500);
  assert.equal(health.missed, 0);
  assert.match(health.summary, /not writable \(database or disk is full\); 500 events waiting/);
  // Overflow the backlog: the oldest go, and are counted.
  for (let i = 500; i < 1600; i++) h.record(accepted(`d${i}`, t + i, 'a@x.example', ['c@y.example']));
  const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;
  assert.ok(elapsedMs < 1000, `record() stayed fast while the store was down (${elapsedMs.toFixed(0)} ms for 1600)`);
  health = h.health();
  assert.ok(health.missed > 0 && health.pending <= 1000, JSON.stringify(health));
  const missed = health.missed;
  backend.down = false;
  // The retry timer catches up on its own: wait (bounded) without calling flush().
  for (let i = 0; i < 200 && h.health().pending > 0; i++) await new Promise((r) => setTimeout(r, 20));
  health = h.health();
  assert.equal(health.ok, true);
  assert.equal(health.pending, 0);
  assert.equal(health.missed, missed);
  assert.match(health.summary, new RegExp(`${missed} events were dropped`));
  const all = await h.search({ recipient: 'c@y.example', limit: 500 });
  assert.equal(all.messages[0].id, 'd1599', 'the newest survived');
  let total = 0;
  let cursor: string | undefined;
  for (let i = 0; i < 10; i++) {
    const r = await h.search({ recipient: 'c@y.example', limit: 500, cursor });
    total += r.messages.length;
    cursor = r.next;
    if (!cursor) break;
  }
  assert.equal(total, 1600 - missed);
  await h.close();
});

test('PostgreSQL stopped and started again: nothing recorded meanwhile is lost', { skip: findPgBin() ? undefined : 'PostgreSQL is not installed' }, async () => {
  const pg = await startPostgres();
  assert.ok(pg);
  try {
    const h = openHistory({ history: { store: 'postgres', postgresUrl: pg.url, retention: 86_400_000 }, mailrootPath: tmp }, {
      logger: silentLogger(), clock: new ManualClock(), purgeEveryMs: 0, recorder: { batchMs: 10, retryMs: 50, maxRetryMs: 100 },
    });
    const t = Date.now();
    h.record(accepted('before', t, 'a@x.example', ['pg@y.example']));
    await h.flush();
    assert.equal(h.health().ok, true);
    pg.pause();
    for (let i = 0; i < 50; i++) h.record(accepted(`while${i}`, t + 1 + i, 'a@x.example', ['pg@y.example']));
    await h.flush();
    assert.equal(h.health().ok, false);
    assert.equal(h.health().pending, 50);
    await assert.rejects(h.search({ recipient: 'pg@y.example' }));
    pg.start();
    for (let i = 0; i < 100 && h.health().pending > 0; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(h.health().ok, true, h.health().summary);
    const found = await h.search({ recipient: 'pg@y.example', limit: 100 });
    assert.equal(found.messages.length, 51);
    assert.equal(h.health().missed, 0);
    await h.close();
  } finally {
    pg.stop();
  }
});
