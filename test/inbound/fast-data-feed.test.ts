// The fast data-mode parser (src/inbound/fast-data-feed.ts) against smtp-server's own, on random
// messages cut into random chunks; the check that guards it against a changed library; and the
// relay using it on a real session.
import assert from 'node:assert/strict';
import test from 'node:test';
import { agreesWithLibrary, fastDataFeedInUse, fastFeedDataStream, libraryFeedDataStream, runFeed, verifyFastDataFeed } from '../../src/inbound/fast-data-feed.ts';
import type { SMTPStream } from 'smtp-server/lib/smtp-stream.js';
import { prng } from '../helpers/prng.ts';
import { RawClient } from './raw-client.ts';
import { startRelay } from './setup.ts';

/** Pieces that make every rule likely: terminators, escapes, bare CR/LF, dots anywhere. */
const PIECES = ['.', '..', '\r', '\n', '\r\n', '\r\n.', '\r\n..', '\r\n.\r\n', '\n.\r\n', 'a', 'text', 'x'.repeat(70)];

test('the fast parser emits, counts, keeps back and ends exactly as smtp-server does, on 3,000 random inputs in random chunks', async () => {
  const rnd = prng(20261208);
  let ends = 0;
  for (let n = 0; n < 3000; n++) {
    const parts: string[] = [];
    const count = 1 + Math.floor(rnd() * 40);
    for (let k = 0; k < count; k++) parts.push(PIECES[Math.floor(rnd() * PIECES.length)]);
    const all = Buffer.from(parts.join(''));
    const chunks: Buffer[] = [];
    for (let at = 0; at < all.length; ) {
      const size = 1 + Math.floor(rnd() * (rnd() < 0.5 ? 6 : all.length));
      chunks.push(all.subarray(at, at + size));
      at += size;
    }
    const library = await runFeed(libraryFeedDataStream, chunks);
    const fast = await runFeed(fastFeedDataStream, chunks);
    const input = JSON.stringify(chunks.map((c) => c.toString('latin1')));
    assert.deepEqual(fast, library, `input ${input}`);
    if (library.ended) ends++;
  }
  // Both outcomes were exercised: messages that ended and messages still waiting for their dot.
  assert.ok(ends > 300 && ends < 2700, `ended ${ends} of 3000`);
});

test('a whole 100 KB message in socket-sized chunks comes out the same', async () => {
  const body = Buffer.from('Subject: t\r\n\r\n' + ('x'.repeat(76) + '\r\n..dot\r\n').repeat(700) + '.\r\nQUIT\r\n');
  const chunks = [body.subarray(0, 65536), body.subarray(65536)];
  const fast = await runFeed(fastFeedDataStream, chunks);
  assert.deepEqual(fast, await runFeed(libraryFeedDataStream, chunks));
  assert.equal(fast.ended, true);
  assert.equal(fast.remainder.toString(), 'QUIT\r\n');
  assert.equal(fast.data.toString().split('\r\n.dot\r\n').length, 701, 'every escape dot removed, once');
});

test('the start-up check refuses a parser that differs from the library (so a changed smtp-server keeps its own)', async () => {
  type Body = (this: SMTPStream, chunk: Buffer, done: (err?: Error | null) => void) => void;
  // Forgets the smuggling fix: a lone dot line at the start no longer ends the message.
  const ignoresStart: Body = function (chunk, done) {
    this._atDataStart = false;
    fastFeedDataStream.call(this, chunk, done);
  };
  // Drops the bytes kept back from the previous chunk.
  const dropsKept: Body = function (chunk, done) {
    this._lastBytes = false;
    fastFeedDataStream.call(this, chunk, done);
  };
  assert.equal(await agreesWithLibrary(libraryFeedDataStream, ignoresStart), false);
  assert.equal(await agreesWithLibrary(libraryFeedDataStream, dropsKept), false);
  assert.equal(await agreesWithLibrary(libraryFeedDataStream), true);
});

test('the relay parses message content with the fast parser once it passed its check', async () => {
  assert.equal(await verifyFastDataFeed(), true);
  assert.equal(fastDataFeedInUse(), true);
  const r = await startRelay();
  try {
    const c = await RawClient.connect(r.port);
    assert.equal((await c.reply()).code, 220);
    assert.equal((await c.cmd('EHLO client.test')).code, 250);
    assert.equal((await c.cmd('MAIL FROM:<sender@example.org>')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<first@example.org>')).code, 250);
    assert.equal((await c.cmd('DATA')).code, 354);
    c.write('..first line\r\nSubject: x\r\n\r\n..\r\n...\r\n.x\r\n');
    // Separate writes (usually separate segments; the result must be the same either way): an
    // escape and the terminator cut across chunks.
    await new Promise((res) => setTimeout(res, 20));
    c.write('\r\n.');
    await new Promise((res) => setTimeout(res, 20));
    c.write('.\r\n.\r\n');
    assert.equal((await c.reply()).code, 250);
    assert.equal((await c.cmd('QUIT')).code, 221);
    c.close();
    const text = r.queue.messages.at(-1)!.content.toString('latin1');
    assert.match(text, /\r\n\.first line\r\nSubject: x\r\n/, 'the first line\'s escape dot removed');
    assert.ok(text.endsWith('\r\n\r\n.\r\n..\r\n.x\r\n\r\n.\r\n'), JSON.stringify(text.slice(-40)));
  } finally {
    await r.close();
  }
});
