import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, readdir, writeFile, readFile, mkdir, rename, stat } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { Readable } from 'node:stream';
import os from 'node:os';
import path from 'node:path';
import { openSpool } from '../../src/queue/spool.ts';
import { readQueueFile, encodeTrailer } from '../../src/queue/queue-file.ts';
import { newRecord } from '../../src/queue/record.ts';
import { crc32 } from 'node:zlib';
import { newQueueId } from '../../src/core/ids.ts';
import { ManualClock } from '../../src/core/clock.ts';
import { silentLogger } from '../../src/core/logger.ts';
import type { Envelope, QueueEvent } from '../../src/core/types.ts';

const NODE = process.execPath;
const env = (rcpts = ['a@example.org']): Envelope => ({ mailFrom: 'printer@example.com', recipients: rcpts, client: { address: '127.0.0.1', source: 'smtp' }, receivedAt: new Date().toISOString(), size: 0 });

/** The record and message of a queue file, read the way the spool reads them. */
async function queued(root: string, state: string, id: string): Promise<{ record: Awaited<ReturnType<typeof readQueueFile>>['record']; message: string }> {
  const file = path.join(root, state, `${id}.eml`);
  const { record, messageSize } = await readQueueFile(file, id);
  return { record, message: (await readFile(file)).subarray(0, messageSize).toString() };
}

async function tmpRoot(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'sh-spool-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('enqueue writes one queue file (message, then envelope) into incoming/ and resolves with an id', { timeout: 30_000 }, async (t) => {
  const root = await tmpRoot(t);
  const events: QueueEvent[] = [];
  const spool = await openSpool({ mailrootPath: root }, { clock: new ManualClock(), logger: silentLogger(), events: (e) => events.push(e) });
  const id = await spool.enqueue(env(['a@x.org', 'b@x.org']), Buffer.from('Subject: hi\r\n\r\nhello\r\n'));
  const files = (await readdir(path.join(root, 'incoming'))).sort();
  assert.deepEqual(files, [`${id}.eml`]);
  const raw = (await readFile(path.join(root, 'incoming', `${id}.eml`))).toString();
  assert.match(raw, /^Subject: hi\r\n\r\nhello\r\n\{"version":1,"id":".*\}\n#smarthost-envelope \d{10} [0-9a-f]{8}\n$/, 'the message as sent, then one line of envelope and the footer');
  const { record: rec, message } = await queued(root, 'incoming', id);
  assert.equal(message, 'Subject: hi\r\n\r\nhello\r\n');
  assert.equal(rec.envelope.size, 22);
  assert.deepEqual(rec.recipients.map((r: { address: string; state: string }) => [r.address, r.state]), [['a@x.org', 'pending'], ['b@x.org', 'pending']]);
  assert.deepEqual((await readdir(path.join(root, 'tmp'))).filter((n) => !n.startsWith('spare-')), [], 'tmp/ holds nothing but spare files');
  assert.equal(events[0].type, 'accepted');
  const shown = await spool.show(id);
  assert.equal(shown.headerPreview, 'Subject: hi');
  assert.equal((await spool.readMessage(id)).toString(), 'Subject: hi\r\n\r\nhello\r\n');
});

test('spare files: created ahead in tmp/, used by the next messages, removed on close and by recovery', { timeout: 30_000 }, async (t) => {
  const root = await tmpRoot(t);
  const spool = await openSpool({ mailrootPath: root }, { clock: new ManualClock(), logger: silentLogger() });
  const spares = async () => (await readdir(path.join(root, 'tmp'))).filter((n) => n.startsWith('spare-')).sort();
  assert.deepEqual(await spares(), [], 'none before the first message');
  await spool.enqueue(env(), Buffer.from('Subject: 1\r\n\r\none\r\n'));
  // made in the thread pool: wait for them (bounded), however busy the machine is
  for (let i = 0; i < 1000 && (await spares()).length < 16; i++) await new Promise((r) => setTimeout(r, 10));
  const ready = await spares();
  assert.equal(ready.length, 16, 'sixteen spares made after the first take');
  const id = await spool.enqueue(env(), Buffer.from('Subject: 2\r\n\r\ntwo\r\n'));
  const left = await spares();
  assert.equal(ready.filter((n) => !left.includes(n)).length, 1, 'the queue file was written into one of them');
  const written = await queued(root, 'incoming', id);
  assert.equal(written.message, 'Subject: 2\r\n\r\ntwo\r\n');
  assert.equal(written.record.id, id);
  await spool.close();
  assert.deepEqual(await spares(), [], 'close removes them');
  // a crash leaves spares behind: recovery empties tmp/ and keeps both messages
  await writeFile(path.join(root, 'tmp', 'spare-999-1'), '');
  const again = await openSpool({ mailrootPath: root }, { clock: new ManualClock(), logger: silentLogger() });
  t.after(() => again.close());
  assert.deepEqual(await spares(), []);
  assert.equal((await again.list()).length, 2);
});

test('close() waits for spare files still being created: none is left in tmp/ after it', { timeout: 30_000 }, async (t) => {
  const root = await tmpRoot(t);
  const { SpareFiles } = await import('../../src/queue/durable.ts');
  await mkdir(path.join(root, 'tmp'), { recursive: true });
  for (let round = 0; round < 5; round++) {
    const spares = new SpareFiles(path.join(root, 'tmp'));
    // the first take starts sixteen spares in the thread pool; close at once, while they are made
    assert.equal(spares.take(), undefined);
    await spares.close();
    const left = (await readdir(path.join(root, 'tmp'))).filter((n) => n.startsWith('spare-'));
    assert.deepEqual(left, [], `round ${round}: spares left after close()`);
  }
});

test('a stream is written without buffering and its size counted', { timeout: 30_000 }, async (t) => {
  const root = await tmpRoot(t);
  const spool = await openSpool({ mailrootPath: root }, { clock: new ManualClock(), logger: silentLogger() });
  const chunks = Array.from({ length: 64 }, (_, i) => Buffer.alloc(16384, 65 + (i % 26)));
  const id = await spool.enqueue(env(), Readable.from(chunks));
  const [entry] = await spool.list();
  assert.equal(entry.record.id, id);
  assert.equal(entry.record.envelope.size, 64 * 16384);
  assert.equal((await spool.readMessage(id)).length, 64 * 16384);
});

test('group commit: 100 parallel enqueues are all durable and share directory fsyncs', { timeout: 30_000 }, async (t) => {
  const root = await tmpRoot(t);
  const spool = await openSpool({ mailrootPath: root }, { clock: new ManualClock(), logger: silentLogger() });
  const before = spool.syncer.syncCount;
  const ids = await Promise.all(Array.from({ length: 100 }, (_, i) => spool.enqueue(env(), Buffer.from(`Subject: ${i}\r\n\r\nx\r\n`))));
  assert.equal(new Set(ids).size, 100);
  const names = await readdir(path.join(root, 'incoming'));
  assert.equal(names.filter((n) => n.endsWith('.eml')).length, 100);
  assert.equal(names.length, 100);
  const syncs = spool.syncer.syncCount - before;
  assert.ok(syncs < 100, `expected fewer directory fsyncs than messages, got ${syncs}`);
  // a fresh spool (as after a restart) sees every message with its own content
  const again = await openSpool({ mailrootPath: root }, { clock: new ManualClock(), logger: silentLogger() });
  const listed = await again.list();
  assert.equal(listed.length, 100);
  for (const id of ids.slice(0, 10)) assert.match((await again.readMessage(id)).toString(), /^Subject: \d+/);
});

test('SIGKILL after enqueue resolved: every acknowledged message survives', { timeout: 30_000 }, async (t) => {
  const root = await tmpRoot(t);
  const child = spawn(NODE, [path.join(import.meta.dirname, 'enqueue-child.ts'), root, '40'], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  const acked: string[] = [];
  await new Promise<void>((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error('child did not finish')), 30_000);
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      for (const m of buf.matchAll(/^OK (\S+)$/gm)) if (!acked.includes(m[1])) acked.push(m[1]);
      if (buf.includes('DONE')) { clearTimeout(timer); resolve(); }
    });
  });
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  assert.equal(acked.length, 40);
  const spool = await openSpool({ mailrootPath: root }, { clock: new ManualClock(), logger: silentLogger() });
  const ids = (await spool.list()).map((e) => e.record.id);
  for (const id of acked) assert.ok(ids.includes(id), `acknowledged message ${id} lost`);
});

test('recovery: tmp dropped, torn enqueues dropped, active requeued as possible duplicates, cut moves resolved, damage to badmail', { timeout: 30_000 }, async (t) => {
  const root = await tmpRoot(t);
  const first = await openSpool({ mailrootPath: root }, { clock: new ManualClock(), logger: silentLogger() });
  const a = await first.enqueue(env(), Buffer.from('Subject: a\r\n\r\na\r\n'));
  const claimed = await first.claim(a);
  assert.ok(claimed);
  assert.deepEqual(await readdir(path.join(root, 'active')), [`${a}.eml`]);
  // a half-received message, and a file renamed into incoming/ with no envelope (cut before its sync)
  await writeFile(path.join(root, 'tmp', 'half.eml'), 'Subject: half\r\n');
  await writeFile(path.join(root, 'incoming', '20261125T120000Z-aaaaaaaaaa-0001.eml'), 'Subject: uncommitted\r\n');
  const incoming = (id: string) => path.join(root, 'incoming', `${id}.eml`);
  // c: right size, but its message octets never reached the disk (zeros): CRC-32 differs → dropped
  const c = await first.enqueue(env(), Buffer.from('Subject: c\r\n\r\nc\r\n'));
  const cRaw = await readFile(incoming(c));
  cRaw.fill(0, 0, 10);
  await writeFile(incoming(c), cRaw);
  // d: cut inside its envelope → dropped
  const d = await first.enqueue(env(), Buffer.from('Subject: d\r\n\r\nd\r\n'));
  const dRaw = await readFile(incoming(d));
  await writeFile(incoming(d), dRaw.subarray(0, dRaw.length - 30));
  // b: moved to deferred/, crash before the old (locked) file was removed → the move stands
  const b = await first.enqueue(env(), Buffer.from('Subject: b\r\n\r\nb\r\n'));
  await writeFile(path.join(root, 'deferred', `${b}.eml`), await readFile(incoming(b)));
  await rename(incoming(b), `${incoming(b)}.locked`);
  // e: locked for a move to hold/, crash before the new file was committed → unlocked where it was
  const e = await first.enqueue(env(), Buffer.from('Subject: e\r\n\r\ne\r\n'));
  await rename(incoming(e), `${incoming(e)}.locked`);
  // g: a damaged file in deferred/ (acknowledged long ago) → badmail with the reason, never dropped
  const g = newQueueId();
  await writeFile(path.join(root, 'deferred', `${g}.eml`), 'Subject: g\r\n\r\nthe envelope is gone\r\n');
  // h: an envelope naming another message (an attempt to forge one) is not taken
  const h = newQueueId();
  const forged = newRecord('20261125T120000Z-bbbbbbbbbb-0002', { ...env(['victim@example.net']), size: 12 });
  await writeFile(path.join(root, 'hold', `${h}.eml`), Buffer.concat([Buffer.from('Subject: h\r\n'), encodeTrailer(forged)]));

  const spool = await openSpool({ mailrootPath: root }, { clock: new ManualClock(), logger: silentLogger() });
  assert.deepEqual(await readdir(path.join(root, 'tmp')), []);
  assert.deepEqual(await readdir(path.join(root, 'active')), []);
  assert.deepEqual((await readdir(path.join(root, 'incoming'))).sort(), [`${a}.eml`, `${e}.eml`].sort());
  assert.deepEqual(await readdir(path.join(root, 'deferred')), [`${b}.eml`]);
  assert.deepEqual(await readdir(path.join(root, 'hold')), []);
  const list = await spool.list();
  assert.deepEqual(list.map((x) => x.record.id).sort(), [a, b, e].sort());
  const ea = list.find((x) => x.record.id === a)!;
  assert.equal(ea.state, 'incoming');
  assert.equal(ea.record.possibleDuplicate, true);
  assert.equal((await spool.readMessage(a)).toString(), 'Subject: a\r\n\r\na\r\n');
  assert.equal(list.find((x) => x.record.id === b)!.state, 'deferred');
  assert.equal((await spool.readMessage(e)).toString(), 'Subject: e\r\n\r\ne\r\n');
  const bad = (await readdir(path.join(root, 'badmail'))).sort();
  assert.deepEqual(bad, [`${g}.BAD`, `${g}.BDR`, `${h}.BAD`, `${h}.BDR`].sort(), 'damaged files of acknowledged messages go to badmail; unacknowledged ones are dropped');
  assert.match(await readFile(path.join(root, 'badmail', `${g}.BDR`), 'utf8'), /queue file of .* in deferred\/ is damaged \(.*no envelope at the end/);
  assert.match(await readFile(path.join(root, 'badmail', `${h}.BDR`), 'utf8'), /belongs to 20261125T120000Z-bbbbbbbbbb-0002/);
  assert.equal(await readFile(path.join(root, 'badmail', `${g}.BAD`), 'utf8'), 'Subject: g\r\n\r\nthe envelope is gone\r\n');
});

test('recovery converts a spool from the two-file layout (<id>.eml + <id>.json)', { timeout: 30_000 }, async (t) => {
  const root = await tmpRoot(t);
  for (const f of ['tmp', 'incoming', 'active', 'deferred', 'hold', 'badmail', 'pickup']) await mkdir(path.join(root, f), { recursive: true });
  const legacy = async (state: string, body: string, patch: (r: ReturnType<typeof newRecord>) => void = () => undefined) => {
    const id = newQueueId();
    const content = Buffer.from(body);
    const rec = newRecord(id, { ...env(['x@example.org']), size: content.length });
    rec.crc32 = crc32(content);
    patch(rec);
    await writeFile(path.join(root, state, `${id}.eml`), content);
    await writeFile(path.join(root, state, `${id}.json`), JSON.stringify(rec));
    return id;
  };
  const deferred = await legacy('deferred', 'Subject: old\r\n\r\nwaiting\r\n', (r) => { r.attempts = 3; r.nextAttemptAt = 42; });
  const active = await legacy('active', 'Subject: old\r\n\r\nbeing sent\r\n');
  const torn = await legacy('incoming', 'Subject: old\r\n\r\ntorn\r\n');
  await writeFile(path.join(root, 'incoming', `${torn}.json`), '{"version":1,');
  const spool = await openSpool({ mailrootPath: root }, { clock: new ManualClock(), logger: silentLogger() });
  t.after(() => spool.close());
  const list = await spool.list();
  assert.deepEqual(list.map((x) => [x.record.id, x.state]).sort(), [[active, 'incoming'], [deferred, 'deferred']].sort());
  const d = await queued(root, 'deferred', deferred);
  assert.equal(d.message, 'Subject: old\r\n\r\nwaiting\r\n');
  assert.deepEqual([d.record.attempts, d.record.nextAttemptAt], [3, 42], 'the record is carried over');
  assert.equal((await queued(root, 'incoming', active)).record.possibleDuplicate, true);
  for (const state of ['incoming', 'deferred', 'active']) assert.deepEqual((await readdir(path.join(root, state))).filter((n) => !n.endsWith('.eml')), [], `no .json left in ${state}/`);
});

test('retry, hold, release, flush and delete move files between folders', { timeout: 30_000 }, async (t) => {
  const root = await tmpRoot(t);
  const clock = new ManualClock();
  const events: QueueEvent[] = [];
  const spool = await openSpool({ mailrootPath: root }, { clock, logger: silentLogger(), events: (e) => events.push(e) });
  const id = await spool.enqueue(env(), Buffer.from('Subject: x\r\n\r\nx\r\n'));
  const rec = (await spool.claim(id))!;
  rec.nextAttemptAt = clock.now() + 3_600_000;
  await spool.settle(rec, 'deferred');
  assert.deepEqual(spool.due(clock.now(), 10), []);
  await spool.retry(id);
  assert.equal(spool.due(clock.now(), 10)[0].id, id);
  await spool.hold(id, 'testing');
  assert.deepEqual(await readdir(path.join(root, 'hold')), [`${id}.eml`]);
  assert.equal((await queued(root, 'hold', id)).record.holdReason, 'testing', 'the new record is in the moved file');
  assert.equal((await queued(root, 'hold', id)).message, 'Subject: x\r\n\r\nx\r\n');
  assert.deepEqual(spool.due(clock.now(), 10), []);
  await spool.release(id);
  assert.equal((await spool.list({ state: 'incoming' })).length, 1);
  // another process (the CLI) sees and changes the same folders
  const cli = await openSpool({ mailrootPath: root }, { clock, logger: silentLogger(), recover: false });
  // while the CLI holds a message's lock, the relay's claim of it fails harmlessly
  await rename(path.join(root, 'incoming', `${id}.eml`), path.join(root, 'incoming', `${id}.eml.locked`));
  assert.equal(await spool.claim(id), undefined);
  await assert.rejects(cli.hold(id), /being delivered or moved right now/);
  await rename(path.join(root, 'incoming', `${id}.eml.locked`), path.join(root, 'incoming', `${id}.eml`));
  await spool.rescan();
  await cli.hold(id);
  await spool.rescan();
  assert.equal((await spool.list())[0].state, 'hold');
  await cli.delete(id);
  assert.deepEqual(await spool.list(), []);
  await assert.rejects(spool.show(id), /no message with queue id/);
  assert.ok(events.some((e) => e.type === 'state' && e.state === 'parked'));
});

test('quarantine writes NAME.BAD and a CRLF NAME.BDR', { timeout: 30_000 }, async (t) => {
  const root = await tmpRoot(t);
  const spool = await openSpool({ mailrootPath: root }, { clock: new ManualClock(), logger: silentLogger() });
  await spool.quarantine(Buffer.from('garbage'), 'no recipients\nfound', 'weird file.txt');
  await spool.quarantine(Buffer.from('garbage 2'), 'again', 'weird file.txt');
  const names = (await readdir(path.join(root, 'badmail'))).sort();
  assert.deepEqual(names, ['weird_file-2.BAD', 'weird_file-2.BDR', 'weird_file.BAD', 'weird_file.BDR']);
  assert.equal(await readFile(path.join(root, 'badmail', 'weird_file.BDR'), 'utf8'), 'no recipients\r\nfound\r\n');
  await mkdir(path.join(root, 'x'), { recursive: true });
  // written in tmp/ and linked into badmail/ whole: nothing of them is left behind in tmp/
  assert.deepEqual((await readdir(path.join(root, 'tmp'))).filter((n) => !n.startsWith('spare-')), []);
  // ten at once under one name: each gets its own, none overwrites another
  await Promise.all(Array.from({ length: 10 }, (_, i) => spool.quarantine(Buffer.from(`copy ${i}`), `reason ${i}`, 'same.eml')));
  const same = (await readdir(path.join(root, 'badmail'))).filter((n) => n.startsWith('same'));
  assert.equal(same.length, 20);
  const contents = await Promise.all(same.filter((n) => n.endsWith('.BAD')).map((n) => readFile(path.join(root, 'badmail', n), 'utf8')));
  assert.deepEqual(contents.sort(), Array.from({ length: 10 }, (_, i) => `copy ${i}`).sort());
  for (const n of same.filter((x) => x.endsWith('.BAD'))) {
    const i = (await readFile(path.join(root, 'badmail', n), 'utf8')).slice('copy '.length);
    assert.equal(await readFile(path.join(root, 'badmail', n.replace(/\.BAD$/, '.BDR')), 'utf8'), `reason ${i}\r\n`, `${n} and its .BDR belong together`);
  }
});

test('due(): incoming in arrival order, deferred only once their time has come, earliest first', { timeout: 30_000 }, async (t) => {
  const root = await tmpRoot(t);
  const clock = new ManualClock();
  const spool = await openSpool({ mailrootPath: root }, { clock, logger: silentLogger() });
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) ids.push(await spool.enqueue(env(), Buffer.from(`Subject: ${i}\r\n\r\nx\r\n`)));
  // defer three of them: 30, 10 and 20 minutes from now
  for (const [id, min] of [[ids[0], 30], [ids[1], 10], [ids[2], 20]] as const) {
    const rec = (await spool.claim(id))!;
    rec.nextAttemptAt = clock.now() + min * 60_000;
    await spool.settle(rec, 'deferred');
  }
  assert.deepEqual(spool.due(clock.now(), 10).map((r) => r.id), [ids[3], ids[4]]);
  assert.deepEqual(spool.due(clock.now(), 1).map((r) => r.id), [ids[3]], 'peeking does not remove');
  assert.equal(spool.nextDue(), 0);
  await spool.claim(ids[3]);
  await spool.claim(ids[4]);
  assert.deepEqual(spool.due(clock.now(), 10), []);
  assert.equal(spool.nextDue(), clock.now() + 10 * 60_000);
  clock.advance(25 * 60_000);
  assert.deepEqual(spool.due(clock.now(), 10).map((r) => r.id), [ids[1], ids[2]]);
  assert.equal(spool.nextDue(), 0);
  clock.advance(5 * 60_000);
  assert.deepEqual(spool.due(clock.now(), 10).map((r) => r.id), [ids[1], ids[2], ids[0]]);
  // a restart finds the same schedule on disk
  const again = await openSpool({ mailrootPath: root }, { clock, logger: silentLogger(), recover: false });
  assert.deepEqual(again.due(clock.now(), 10).map((r) => r.id), [ids[1], ids[2], ids[0]], 'the two claimed ones sit in active/');
});

test('delivered messages are removed in batches: gone from the index at once, from the disk soon after, and on close', { timeout: 30_000 }, async (t) => {
  const root = await tmpRoot(t);
  const spool = await openSpool({ mailrootPath: root }, { clock: new ManualClock(), logger: silentLogger() });
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) ids.push(await spool.enqueue(env(), Buffer.from(`Subject: ${i}\r\n\r\nbody\r\n`)));
  for (const id of ids.slice(0, 2)) {
    const rec = await spool.claim(id);
    assert.ok(rec);
    await spool.settle(rec, 'done');
  }
  assert.deepEqual((await spool.list()).map((e) => e.record.id), [ids[2]], 'a rescan does not bring back a message waiting for removal');
  for (let i = 0; i < 100 && (await readdir(path.join(root, 'active'))).length > 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(await readdir(path.join(root, 'active')), [], 'removed from active/ by the batch');
  const last = await spool.claim(ids[2]);
  assert.ok(last);
  await spool.settle(last, 'done');
  await spool.close();
  assert.deepEqual(await readdir(path.join(root, 'active')), [], 'close() finishes the pending batch');
});

test('a caller-made queue id is kept (the Received header names it); a malformed or used one is refused with 451', { timeout: 30_000 }, async (t) => {
  const root = await tmpRoot(t);
  const spool = await openSpool({ mailrootPath: root }, { clock: new ManualClock(), logger: silentLogger() });
  t.after(() => spool.close());
  const made = newQueueId();
  assert.equal(await spool.enqueue(env(), Buffer.from('Subject: named\r\n\r\nx\r\n'), made), made);
  assert.deepEqual(await readdir(path.join(root, 'incoming')), [`${made}.eml`]);
  for (const bad of [made, '../../etc/passwd', 'x']) {
    await assert.rejects(spool.enqueue(env(), Buffer.from('Subject: again\r\n\r\nx\r\n'), bad),
      (e: Error & { responseCode?: number }) => e.responseCode === 451 && /malformed or already in use/.test(e.message), bad);
  }
  assert.equal((await spool.list()).length, 1, 'nothing else was queued');
});

test('the spool marks 8-bit content (for BODY=8BITMIME upstream), in memory or streamed; 7-bit content is not marked', { timeout: 30_000 }, async (t) => {
  const root = await tmpRoot(t);
  const spool = await openSpool({ mailrootPath: root }, { clock: new ManualClock(), logger: silentLogger() });
  t.after(() => spool.close());
  const plain = await spool.enqueue(env(), Buffer.from('Subject: a\r\n\r\nplain\r\n'));
  const umlaut = await spool.enqueue(env(), Buffer.from('Subject: b\r\n\r\nGrüße\r\n'));
  const streamed = await spool.enqueue(env(), Readable.from([Buffer.from('Subject: c\r\n\r\n'), Buffer.from('Grüße\r\n')]));
  const byId = new Map((await spool.list()).map((e) => [e.record.id, e.record.envelope]));
  assert.equal(byId.get(plain)!.eightBit, undefined);
  assert.equal(byId.get(umlaut)!.eightBit, true);
  assert.equal(byId.get(streamed)!.eightBit, true);
  assert.equal((await queued(root, 'incoming', umlaut)).record.envelope.eightBit, true, 'kept in the queue file');
  assert.equal((await queued(root, 'incoming', streamed)).message, 'Subject: c\r\n\r\nGrüße\r\n', 'a streamed message is followed by its envelope too');
});

test('a delivered message\'s file is reused for a later message (same inode), cut or grown to the new length', { timeout: 30_000 }, async (t) => {
  const root = await tmpRoot(t);
  const spool = await openSpool({ mailrootPath: root }, { clock: new ManualClock(), logger: silentLogger() });
  t.after(() => spool.close());
  const long = `Subject: long\r\n\r\n${'x'.repeat(5000)}\r\n`;
  const first = await spool.enqueue(env(), Buffer.from(long));
  const inode = (await stat(path.join(root, 'incoming', `${first}.eml`))).ino;
  const rec = (await spool.claim(first))!;
  await spool.settle(rec, 'done');
  // the removal batch renames it into tmp/ as a spare, still open
  let spare: string | undefined;
  for (let i = 0; i < 100 && !spare; i++) {
    for (const n of await readdir(path.join(root, 'tmp'))) if ((await stat(path.join(root, 'tmp', n))).ino === inode) spare = n;
    if (!spare) await new Promise((r) => setTimeout(r, 10));
  }
  assert.ok(spare, 'the delivered file waits in tmp/ as a spare');
  assert.deepEqual(await readdir(path.join(root, 'active')), []);
  // the next message is written over it: shorter, so the old tail is cut off
  const short = await spool.enqueue(env(), Buffer.from('Subject: short\r\n\r\nhi\r\n'));
  assert.equal((await stat(path.join(root, 'incoming', `${short}.eml`))).ino, inode, 'same file, no new one created');
  const got = await queued(root, 'incoming', short);
  assert.equal(got.message, 'Subject: short\r\n\r\nhi\r\n');
  assert.equal(got.record.id, short);
  // after a restart (no memory of it), the file reads back the same
  const again = await openSpool({ mailrootPath: root }, { clock: new ManualClock(), logger: silentLogger(), recover: false });
  assert.equal((await again.readMessage(short)).toString(), 'Subject: short\r\n\r\nhi\r\n');
  // and a longer one after a shorter one grows the file
  const r2 = (await spool.claim(short))!;
  await spool.settle(r2, 'done');
  for (let i = 0; i < 100 && (await readdir(path.join(root, 'active'))).length; i++) await new Promise((r) => setTimeout(r, 10));
  const grown = await spool.enqueue(env(), Buffer.from(long));
  assert.equal((await queued(root, 'incoming', grown)).message, long);
});

test('a kept-open file replaced by another process is not reused: the next message is still written whole under its own id', { timeout: 30_000 }, async (t) => {
  const root = await tmpRoot(t);
  const spool = await openSpool({ mailrootPath: root }, { clock: new ManualClock(), logger: silentLogger() });
  t.after(() => spool.close());
  const id = await spool.enqueue(env(), Buffer.from('Subject: first\r\n\r\nfirst\r\n'));
  const rec = (await spool.claim(id))!;
  // the file in active/ is now another inode than the one the spool wrote (as a move by the CLI makes it)
  const file = path.join(root, 'active', `${id}.eml`);
  await writeFile(path.join(root, 'other'), await readFile(file));
  await rename(path.join(root, 'other'), file);
  const replacement = (await stat(file)).ino;
  await spool.settle(rec, 'done');
  for (let i = 0; i < 100 && (await readdir(path.join(root, 'active'))).length; i++) await new Promise((r) => setTimeout(r, 10));
  for (const n of await readdir(path.join(root, 'tmp'))) assert.notEqual((await stat(path.join(root, 'tmp', n))).ino, replacement, 'the replaced file is deleted, not kept as a spare');
  const ids = [];
  for (let i = 0; i < 20; i++) ids.push(await spool.enqueue(env(), Buffer.from(`Subject: next ${i}\r\n\r\nbody\r\n`)));
  for (const [i, next] of ids.entries()) {
    const got = await queued(root, 'incoming', next);
    assert.equal(got.message, `Subject: next ${i}\r\n\r\nbody\r\n`);
  }
});

test('recovery deletes spare files left by a crash without counting them as half-received messages', { timeout: 30_000 }, async (t) => {
  const root = await tmpRoot(t);
  const { recoverSpool } = await import('../../src/queue/recovery.ts');
  const { spoolPaths, SPOOL_FOLDERS } = await import('../../src/queue/paths.ts');
  const { DirectorySyncer } = await import('../../src/queue/durable.ts');
  const paths = spoolPaths(root);
  for (const f of SPOOL_FOLDERS) await mkdir(paths.folder(f), { recursive: true });
  await writeFile(path.join(root, 'tmp', 'spare-999-1'), '');
  await writeFile(path.join(root, 'tmp', 'spare-999-2'), 'a delivered message kept for reuse');
  await writeFile(path.join(root, 'tmp', 'half.eml'), 'Subject: half\r\n');
  const report = await recoverSpool(paths, new DirectorySyncer(), silentLogger());
  assert.equal(report.droppedPartial, 1);
  assert.deepEqual(await readdir(path.join(root, 'tmp')), []);
});

test('a delivered message is noted in delivered.log at once; after a crash recovery removes it from active/ instead of delivering it again', async () => {
  const root = await mkdtemp(path.join(os.tmpdir(), 'sh-delivered-'));
  try {
    const first = await openSpool({ mailrootPath: root }, { clock: new ManualClock(), logger: silentLogger() });
    const done = await first.enqueue(env(), Buffer.from('Subject: done\r\n\r\nx\r\n'));
    const inFlight = await first.enqueue(env(), Buffer.from('Subject: in flight\r\n\r\ny\r\n'));
    const a = (await first.claim(done))!;
    const b = (await first.claim(inFlight))!;
    assert.ok(a && b);
    const kept = await readFile(path.join(root, 'active', `${done}.eml`));
    await first.settle(a, 'done');
    // written synchronously by settle, before the removal batch
    assert.equal(await readFile(path.join(root, 'delivered.log'), 'latin1'), `${done}\n`);
    await first.close();
    // A SIGKILL before the removal batch: the file is still in active/ (put back here), beside the one in flight.
    await writeFile(path.join(root, 'active', `${done}.eml`), kept);
    assert.deepEqual((await readdir(path.join(root, 'active'))).sort(), [`${done}.eml`, `${inFlight}.eml`].sort());
    const spool = await openSpool({ mailrootPath: root }, { clock: new ManualClock(), logger: silentLogger() });
    const list = await spool.list();
    assert.deepEqual(list.map((x) => x.record.id), [inFlight], 'the delivered one is not queued again; the one in flight is');
    assert.equal(list[0].record.possibleDuplicate, true);
    assert.deepEqual(await readdir(path.join(root, 'active')), []);
    assert.equal(await readFile(path.join(root, 'delivered.log'), 'latin1'), '', 'emptied once recovery has used it');
    await spool.close();
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
