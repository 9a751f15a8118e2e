import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile, readdir } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import os from 'node:os';
import path from 'node:path';
import { openSpool } from '../../../src/queue/spool.ts';
import { systemClock } from '../../../src/core/clock.ts';
import { silentLogger } from '../../../src/core/logger.ts';

const run = promisify(execFile);
const BIN = path.resolve('bin/smarthost.js');
const cli = (args: string[]) => run(process.execPath, [BIN, ...args], { timeout: 20_000 }).then((r) => ({ ...r, code: 0 })).catch((e: { stdout: string; stderr: string; code: number }) => ({ stdout: e.stdout, stderr: e.stderr, code: e.code }));

test('queue list / show / retry / flush / delete on the spool folders', { timeout: 60_000 }, async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'sh-cli-queue-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const cfg = path.join(dir, 'smarthost.yaml');
  await writeFile(cfg, 'mailroot: ./spool\n');
  const spool = await openSpool({ mailrootPath: path.join(dir, 'spool') }, { clock: systemClock, logger: silentLogger() });
  const env = { mailFrom: 'scanner@contoso.com', recipients: ['a@x.org', 'b@x.org'], client: { address: '10.0.0.7', source: 'smtp' as const }, receivedAt: new Date().toISOString(), size: 0 };
  const a = await spool.enqueue(env, Buffer.from('Subject: Invoice 7\r\nFrom: scanner@contoso.com\r\n\r\nx\r\n'));
  const b = await spool.enqueue(env, Buffer.from('Subject: other\r\n\r\ny\r\n'));
  const rec = (await spool.claim(a))!;
  rec.recipients[1].state = 'failed';
  rec.lastError = '451 4.3.0 Try again later';
  rec.nextAttemptAt = Date.now() + 3_600_000;
  await spool.settle(rec, 'deferred');

  const list = await cli(['queue', 'list', '--config', cfg]);
  assert.match(list.stdout, /ID\s+STATE\s+AGE/);
  assert.match(list.stdout, new RegExp(`${a}\\s+deferred`));
  assert.match(list.stdout, new RegExp(`${b}\\s+incoming`));
  assert.match(list.stdout, /451 4\.3\.0 Try again later/);
  assert.match(list.stdout, /2 message\(s\)/);

  const json = JSON.parse((await cli(['queue', 'list', '--config', cfg, '--json'])).stdout);
  assert.deepEqual(json.map((e: { id: string; state: string }) => [e.id, e.state]).sort(), [[a, 'deferred'], [b, 'incoming']].sort());

  const show = await cli(['queue', 'show', a, '--config', cfg]);
  assert.match(show.stdout, /Sender:\s+scanner@contoso\.com/);
  assert.match(show.stdout, /a@x\.org\s+pending/);
  assert.match(show.stdout, /b@x\.org\s+failed/);
  assert.match(show.stdout, /Subject: Invoice 7/);

  const flush = await cli(['queue', 'flush', '--config', cfg]);
  assert.match(flush.stdout, /1 deferred message\(s\) due now/);
  assert.ok((await readdir(path.join(dir, 'spool', 'incoming'))).includes(`${a}.eml`));

  const del = await cli(['queue', 'delete', b, '--config', cfg]);
  assert.match(del.stdout, /deleted/);
  assert.ok(!(await readdir(path.join(dir, 'spool', 'incoming'))).includes(`${b}.eml`));

  const missing = await cli(['queue', 'show', '20991231T000000Z-0000000000-0000', '--config', cfg]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /no message with queue id/);
});
