// The SQLite history worker stops when idle (src/history/sqlite.ts) and the next request starts a
// new one on the same database: what was written before is found after, and writes go on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openSqliteBackend } from '../../src/history/sqlite.ts';
import { accepted } from './events.ts';

test('an idle history worker stops; the next request starts a new one that finds what was written', { timeout: 30_000 }, async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'smarthost-sqlite-idle-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const backend = openSqliteBackend(path.join(dir, 'history.sqlite'), { idleStopMs: 50 });
  t.after(() => backend.close());
  const stopped = async () => {
    for (let i = 0; i < 400 && backend.running(); i++) await new Promise((r) => setTimeout(r, 25));
    return !backend.running();
  };
  const count = async () => Number((await backend.query('SELECT count(*) AS n FROM messages'))[0].n);

  await backend.init();
  await backend.writeEvents!([accepted('A1', 1_000, 'scanner@example.com', ['a@example.org'])]);
  assert.equal(backend.running(), true);
  assert.equal(await stopped(), true, 'the idle worker was not stopped');

  await backend.init();
  assert.equal(backend.running(), true, 'a request did not start a worker');
  assert.equal(await count(), 1, 'the message written before the stop is not found');
  await backend.writeEvents!([accepted('A2', 2_000, 'scanner@example.com', ['b@example.org'])]);
  assert.equal(await count(), 2);
  assert.equal(await stopped(), true, 'the second worker was not stopped when idle');
});
