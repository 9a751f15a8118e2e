/**
 * The spool hands a just-accepted message to its first delivery from memory (no read-back of the
 * file), and only until the message is first settled; streamed messages are always read from disk.
 * Each check rewrites the message in its queue file (same length, upper case) so that memory and disk
 * can be told apart.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, readFile, writeFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import os from 'node:os';
import path from 'node:path';
import { openSpool } from '../../src/queue/spool.ts';
import { ManualClock } from '../../src/core/clock.ts';
import { silentLogger } from '../../src/core/logger.ts';
import type { Envelope } from '../../src/core/types.ts';

const env = (): Envelope => ({ mailFrom: 'printer@example.com', recipients: ['a@example.org'], client: { address: '127.0.0.1', source: 'smtp' }, receivedAt: new Date().toISOString(), size: 0 });

/** Upper-cases the message part (its first `size` octets) of a queue file, leaving its envelope as it is. */
async function shoutOnDisk(file: string, size: number): Promise<void> {
  const raw = await readFile(file);
  Buffer.from(raw.subarray(0, size).toString('latin1').toUpperCase(), 'latin1').copy(raw);
  await writeFile(file, raw);
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stream as AsyncIterable<Buffer>) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks).toString();
}

test('a message enqueued whole is delivered from memory until it is first settled', { timeout: 30_000 }, async (t) => {
  const root = await mkdtemp(path.join(os.tmpdir(), 'sh-fresh-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  const spool = await openSpool({ mailrootPath: root }, { clock: new ManualClock(), logger: silentLogger() });
  t.after(() => spool.close());
  const original = 'Subject: hi\r\n\r\nfrom the client\r\n';
  const id = await spool.enqueue(env(), Buffer.from(original));
  await shoutOnDisk(path.join(root, 'incoming', `${id}.eml`), original.length);
  const record = await spool.claim(id);
  assert.ok(record);
  const first = spool.openMessage(id);
  assert.equal(first.readableObjectMode, false);
  assert.equal(await readAll(first), original);
  assert.equal(await readAll(spool.openMessage(id)), original, 'a second open (failover, retry) still gets it');
  const where = spool.locateMessage(id);
  assert.ok('buffer' in where && where.buffer.toString() === original, 'located in memory for a delivery thread');
  await spool.settle(record, 'deferred');
  assert.deepEqual(spool.locateMessage(id), { file: path.join(root, 'deferred', `${id}.eml`), size: original.length }, 'then located as its file (the message is its first `size` octets)');
  assert.equal(await readAll(spool.openMessage(id)), original.toUpperCase(), 'after the first settle, the file is read, and only the message part');
  assert.equal((await spool.readMessage(id)).toString(), original.toUpperCase());
});

test('a streamed message is read from its file', { timeout: 30_000 }, async (t) => {
  const root = await mkdtemp(path.join(os.tmpdir(), 'sh-fresh-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  const spool = await openSpool({ mailrootPath: root }, { clock: new ManualClock(), logger: silentLogger() });
  t.after(() => spool.close());
  const id = await spool.enqueue(env(), Readable.from([Buffer.from('Subject: big\r\n\r\n'), Buffer.from('streamed\r\n')]));
  await shoutOnDisk(path.join(root, 'incoming', `${id}.eml`), 26);
  assert.equal(await readAll(spool.openMessage(id)), 'SUBJECT: BIG\r\n\r\nSTREAMED\r\n');
});

test('a handed-over Buffer is given away to one delivery thread once, never while lent, then read from the file', { timeout: 30_000 }, async (t) => {
  const root = await mkdtemp(path.join(os.tmpdir(), 'sh-fresh-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  const spool = await openSpool({ mailrootPath: root }, { clock: new ManualClock(), logger: silentLogger() });
  t.after(() => spool.close());
  // 64 KB: its own memory (Buffer.concat of a small message would be a slice of Node's shared pool)
  const body = Buffer.concat([Buffer.from('Subject: big\r\n\r\n'), Buffer.alloc(64 * 1024, 'x')]);
  const id = await spool.enqueue(env(), body, undefined, { handOver: true });
  await shoutOnDisk(path.join(root, 'incoming', `${id}.eml`), body.length);
  const taken = spool.locateMessage(id, true);
  assert.ok('buffer' in taken && taken.owned === true && taken.buffer === body, 'the Buffer itself, owned: no copy needed');
  const next = spool.locateMessage(id, true);
  assert.ok('file' in next, 'given away once: the next delivery (another route, a retry) reads the file');
  assert.equal((await readAll(spool.openMessage(id))).slice(0, 12), 'SUBJECT: BIG');

  // lent to a stream first: never given away under it
  const body2 = Buffer.concat([Buffer.from('Subject: two\r\n\r\n'), Buffer.alloc(64 * 1024, 'y')]);
  const id2 = await spool.enqueue(env(), body2, undefined, { handOver: true });
  const stream = spool.openMessage(id2);
  const lent = spool.locateMessage(id2, true);
  assert.ok('buffer' in lent && !lent.owned, 'in memory, but not owned: the caller must copy');
  assert.equal((await readAll(stream)).slice(0, 12), 'Subject: two');

  // without handOver (pickup, reports): never given away
  const body3 = Buffer.concat([Buffer.from('Subject: three\r\n\r\n'), Buffer.alloc(64 * 1024, 'z')]);
  const id3 = await spool.enqueue(env(), body3);
  const kept = spool.locateMessage(id3, true);
  assert.ok('buffer' in kept && !kept.owned);
  // a slice of Node's Buffer pool (a small message) is never owned either
  const id4 = await spool.enqueue(env(), Buffer.concat([Buffer.from('Subject: s\r\n\r\nsmall\r\n')]), undefined, { handOver: true });
  const small = spool.locateMessage(id4, true);
  assert.ok('buffer' in small && !small.owned);
});
