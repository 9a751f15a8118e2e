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
