// The SMTP transport in its own thread (src/transports/smtp-thread.ts), against a real SMTP server
// on loopback: same fates as on the main thread, content from memory or from the spool file, the
// thread's logs reach the relay's logger, a configuration error is reported at creation, and a
// thread that dies mid-send leaves the message delayed and marked as a possible duplicate.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Readable, Writable } from 'node:stream';
import os from 'node:os';
import path from 'node:path';
import { createThreadedSmtpTransport } from '../../src/transports/smtp-thread.ts';
import { createLogger, silentLogger } from '../../src/core/logger.ts';
import { upstreamSchema } from '../../src/config/sections/upstreams.ts';
import type { MessageLocation, OutboundMessage } from '../../src/core/types.ts';
import { startUpstream } from './upstream-server.ts';

const T = { timeout: 30_000 };

function message(raw: Buffer, recipients: string[], where: MessageLocation = { buffer: raw }): OutboundMessage {
  return { id: 'Q1', mailFrom: 'printer@example.com', recipients, size: raw.length, open: () => Readable.from([raw]), read: async () => raw, locate: () => where };
}

test('threaded: per-recipient fates and the bytes on the wire are those of the main-thread transport', T, async (t) => {
  const up = await startUpstream({ rcpt: (a) => (a.startsWith('bad') ? [550, '5.1.1 User unknown'] : a.startsWith('later') ? [451, '4.2.0 Try again later'] : undefined) });
  t.after(() => up.close());
  const tr = await createThreadedSmtpTransport(upstreamSchema.parse({ name: 'plain', url: `smtp://127.0.0.1:${up.port}` }), { logger: silentLogger(), hostname: 'relay.test' });
  t.after(() => tr.close());
  // a bare LF and a leading dot: normalised and dot-stuffed in the thread, as on the main thread
  const raw = Buffer.from('Subject: fates\r\n\r\nline one\n.leading dot\r\n');
  const out = await tr.send(message(raw, ['good@x.org', 'bad@x.org', 'later@x.org']));
  const by = Object.fromEntries(out.map((o) => [o.recipient, o]));
  assert.equal(by['good@x.org'].action, 'delivered');
  assert.equal(by['bad@x.org'].action, 'failed');
  assert.equal(by['bad@x.org'].status, '5.1.1');
  assert.equal(by['later@x.org'].action, 'delayed');
  assert.equal(up.received.length, 1);
  assert.deepEqual(up.received[0].to, ['good@x.org']);
  assert.equal(up.received[0].data.toString(), 'Subject: fates\r\n\r\nline one\r\n.leading dot\r\n');
  assert.equal(up.received[0].from, 'printer@example.com');
});

test('threaded: a message not in memory is read by the thread from its queue file (the message part only)', T, async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'sh-thread-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'Q1.eml');
  const raw = Buffer.from(`Subject: from disk\r\n\r\n${'x'.repeat(76).concat('\r\n').repeat(4000)}`);
  await writeFile(file, Buffer.concat([raw, Buffer.from('{"envelope":"after the message"}\n#smarthost-envelope 0000000031 00000000\n')]));
  const up = await startUpstream();
  t.after(() => up.close());
  const tr = await createThreadedSmtpTransport(upstreamSchema.parse({ name: 'plain', url: `smtp://127.0.0.1:${up.port}` }), { logger: silentLogger(), hostname: 'relay.test' });
  t.after(() => tr.close());
  const out = await tr.send(message(Buffer.from('not these bytes'), ['a@x.org'], { file, size: raw.length }));
  assert.equal(out[0].action, 'delivered', out[0].diagnostic);
  assert.equal(up.received[0].data.toString(), raw.toString());
});

test('threaded: a Buffer the spool gave away (owned) crosses without a copy; one it only lent is copied and stays intact', T, async (t) => {
  const up = await startUpstream();
  t.after(() => up.close());
  const tr = await createThreadedSmtpTransport(upstreamSchema.parse({ name: 'plain', url: `smtp://127.0.0.1:${up.port}` }), { logger: silentLogger(), hostname: 'relay.test' });
  t.after(() => tr.close());
  const text = `Subject: owned\r\n\r\n${'o'.repeat(76).concat('\r\n').repeat(1000)}`;
  const owned = Buffer.from(text);
  const ownedOut = await tr.send(message(owned, ['a@x.org'], { buffer: owned, owned: true }));
  assert.equal(ownedOut[0].action, 'delivered', ownedOut[0].diagnostic);
  assert.equal(up.received[0].data.toString(), text);
  assert.equal(owned.buffer.byteLength, 0, 'its memory moved to the thread (transferred, not copied)');
  const lent = Buffer.from(text);
  const lentOut = await tr.send(message(lent, ['a@x.org'], { buffer: lent }));
  assert.equal(lentOut[0].action, 'delivered', lentOut[0].diagnostic);
  assert.equal(up.received[1].data.toString(), text);
  assert.equal(lent.toString(), text, 'a lent Buffer is copied: the spool still has it whole');
});

test('threaded: a configuration error is reported at creation; the thread logs through the relay logger', T, async (t) => {
  await assert.rejects(
    createThreadedSmtpTransport(upstreamSchema.parse({ name: 'm365', url: 'smtp+starttls://127.0.0.1:1', username: 'scan@contoso.com' }), { logger: silentLogger(), hostname: 'relay.test' }),
    (e: Error & { code?: string }) => e.code === 'SH_CONFIG_INVALID' && /m365: basic auth needs username and password/.test(e.message),
  );
  const lines: string[] = [];
  const sink = new Writable({ write(chunk, _enc, cb) { lines.push(String(chunk)); cb(); } });
  const logger = createLogger({ level: 'debug', format: 'json', destination: sink }).child({ upstream: 'down' });
  const tr = await createThreadedSmtpTransport(upstreamSchema.parse({ name: 'down', url: 'smtp://127.0.0.1:1' }), { logger, hostname: 'relay.test' });
  t.after(() => tr.close());
  const out = await tr.send(message(Buffer.from('Subject: x\r\n\r\nx\r\n'), ['a@x.org']));
  assert.equal(out[0].action, 'delayed');
  assert.equal(out[0].status, '4.4.1');
  const logged = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'smtp send failed');
  assert.ok(logged, `the thread's log line reached the relay's logger: ${lines.join('')}`);
  assert.equal(logged.upstream, 'down');
  assert.equal(logged.level, 20, 'at its own level (debug)');
  assert.deepEqual(await tr.verify!().then((v) => v.ok), false);
});

test('threaded: a thread that dies mid-send leaves the message delayed and a possible duplicate; the next send gets a new thread', T, async (t) => {
  const up = await startUpstream({ hangAfterDot: 1 });
  t.after(() => up.close());
  const tr = await createThreadedSmtpTransport(upstreamSchema.parse({ name: 'plain', url: `smtp://127.0.0.1:${up.port}` }), { logger: silentLogger(), hostname: 'relay.test' });
  t.after(() => tr.close());
  const raw = Buffer.from('Subject: in flight\r\n\r\nhello\r\n');
  const pending = tr.send(message(raw, ['a@x.org']));
  // wait until the upstream has the whole message (it then never answers the dot)
  for (let i = 0; i < 200 && up.received.length === 0; i++) await new Promise((r) => setTimeout(r, 25));
  assert.equal(up.received.length, 1, 'the upstream got the message before the thread died');
  await tr.restartThread();
  const [o] = await pending;
  assert.equal(o.action, 'delayed');
  assert.equal(o.possibleDuplicate, true);
  assert.match(o.diagnostic ?? '', /delivery thread of plain stopped/);
  const [again] = await tr.send(message(raw, ['a@x.org']));
  assert.equal(again.action, 'delivered', again.diagnostic);
  assert.equal(up.received.length, 2);
});

test('8-bit content is declared with BODY=8BITMIME (RFC 6152), through the thread too; 7-bit content is not', T, async (t) => {
  const up = await startUpstream();
  t.after(() => up.close());
  const tr = await createThreadedSmtpTransport(upstreamSchema.parse({ name: 'plain', url: `smtp://127.0.0.1:${up.port}` }), { logger: silentLogger(), hostname: 'relay.test' });
  t.after(() => tr.close());
  const eight = Buffer.from('Subject: Rechnung\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGrüße aus dem Büro\r\n');
  const seven = Buffer.from('Subject: plain\r\n\r\nhello\r\n');
  assert.equal((await tr.send({ ...message(eight, ['a@x.org']), eightBit: true }))[0].action, 'delivered');
  assert.equal((await tr.send(message(seven, ['a@x.org'])))[0].action, 'delivered');
  assert.equal(up.received[0].mailArgs?.BODY, '8BITMIME');
  assert.equal(up.received[0].data.toString(), eight.toString(), 'the 8-bit bytes arrive as they are');
  assert.equal(up.received[1].mailArgs?.BODY, undefined);
});

test('threaded: an idle thread is stopped (memory back) and the next send starts a new one that delivers', T, async (t) => {
  const up = await startUpstream();
  t.after(() => up.close());
  const tr = await createThreadedSmtpTransport(upstreamSchema.parse({ name: 'plain', url: `smtp://127.0.0.1:${up.port}` }), { logger: silentLogger(), hostname: 'relay.test', idleStopMs: 50 });
  t.after(() => tr.close());
  const stopped = async () => {
    for (let i = 0; i < 400 && tr.threadRunning(); i++) await new Promise((r) => setTimeout(r, 25));
    return !tr.threadRunning();
  };
  // the thread that checked the settings at creation goes once idle
  assert.equal(await stopped(), true, 'the thread started at creation was not stopped when idle');
  const raw = Buffer.from('Subject: after idle\r\n\r\nhello\r\n');
  const [first] = await tr.send(message(raw, ['a@x.org']));
  assert.equal(first.action, 'delivered', first.diagnostic);
  assert.equal(tr.threadRunning(), true, 'a send did not start a thread');
  assert.equal(await stopped(), true, 'the thread was not stopped after its send');
  const [second] = await tr.send(message(raw, ['b@x.org']));
  assert.equal(second.action, 'delivered', second.diagnostic);
  assert.equal(up.received.length, 2);
});

test('threaded: a thread with a send in flight is not stopped for being idle', T, async (t) => {
  const up = await startUpstream({ hangAfterDot: 1 });
  t.after(() => up.close());
  const tr = await createThreadedSmtpTransport(upstreamSchema.parse({ name: 'plain', url: `smtp://127.0.0.1:${up.port}` }), { logger: silentLogger(), hostname: 'relay.test', idleStopMs: 1 });
  t.after(() => tr.close());
  const raw = Buffer.from('Subject: slow\r\n\r\nhello\r\n');
  const pending = tr.send(message(raw, ['a@x.org']));
  for (let i = 0; i < 200 && up.received.length === 0; i++) await new Promise((r) => setTimeout(r, 25));
  assert.equal(up.received.length, 1, 'the upstream got the message');
  // well past the idle limit (1 ms) and the start-up one (1 s): the send keeps the thread
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(tr.threadRunning(), true, 'the thread was stopped while a send was in flight');
  await tr.restartThread();
  const [o] = await pending;
  assert.equal(o.action, 'delayed');
});

test('threaded: a wire-safe message (from memory, and from its queue file) goes without the line pass; its dots are stuffed and arrive intact', T, async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'sh-thread-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const up = await startUpstream();
  t.after(() => up.close());
  const tr = await createThreadedSmtpTransport(upstreamSchema.parse({ name: 'plain', url: `smtp://127.0.0.1:${up.port}` }), { logger: silentLogger(), hostname: 'relay.test' });
  t.after(() => tr.close());
  // lines a server would read as the end of DATA or lose a dot of, were they not stuffed
  const raw = Buffer.from(`.first\r\nSubject: dots\r\n\r\n.\r\n..\r\n.x\r\n${'y'.repeat(998)}\r\n${'text\r\n'.repeat(3000)}.\r\nlast\r\n`);
  const fromMemory = await tr.send({ ...message(raw, ['a@x.org']), wireSafe: true });
  assert.equal(fromMemory[0].action, 'delivered', fromMemory[0].diagnostic);
  assert.equal(up.received.at(-1)!.data.toString('latin1'), raw.toString('latin1'));
  const file = path.join(dir, 'Q1.eml');
  await writeFile(file, Buffer.concat([raw, Buffer.from('{"envelope":"after the message"}\n')]));
  const fromFile = await tr.send({ ...message(Buffer.from('not these bytes'), ['b@x.org'], { file, size: raw.length }), wireSafe: true });
  assert.equal(fromFile[0].action, 'delivered', fromFile[0].diagnostic);
  assert.equal(up.received.at(-1)!.data.toString('latin1'), raw.toString('latin1'));
});
