import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import os from 'node:os';
import path from 'node:path';
import { createSmtpTransport, parseSmtpUrl, enhancedStatus } from '../../src/transports/smtp.ts';
import { createLineNormalizer } from '../../src/transports/line-normalizer.ts';
import { silentLogger } from '../../src/core/logger.ts';
import { upstreamSchema } from '../../src/config/sections/upstreams.ts';
import type { OutboundMessage } from '../../src/core/types.ts';
import { startUpstream } from './upstream-server.ts';

const T = { timeout: 30_000 };

function message(raw: string | Buffer, recipients: string[], mailFrom = 'printer@example.com'): OutboundMessage {
  const buf = Buffer.isBuffer(raw) ? raw : Buffer.from(raw);
  return { id: 'test', mailFrom, recipients, size: buf.length, open: () => Readable.from([buf]), read: async () => buf };
}

async function collect(input: Buffer[]): Promise<Buffer> {
  const n = createLineNormalizer();
  const out: Buffer[] = [];
  n.on('data', (c: Buffer) => out.push(c));
  const done = new Promise((r) => n.on('end', r));
  for (const c of input) n.write(c);
  n.end();
  await done;
  return Buffer.concat(out);
}

test('URL grammar: schemes and default ports', () => {
  assert.deepEqual(parseSmtpUrl('smtp+starttls://smtp.office365.com'), { scheme: 'smtp+starttls', host: 'smtp.office365.com', port: 587 });
  assert.deepEqual(parseSmtpUrl('smtps://mail.example.com'), { scheme: 'smtps', host: 'mail.example.com', port: 465 });
  assert.deepEqual(parseSmtpUrl('smtp://[::1]:2525'), { scheme: 'smtp', host: '::1', port: 2525 });
  assert.throws(() => parseSmtpUrl('smtp://host:25/path?x'), /not smtp\+starttls/);
  assert.equal(enhancedStatus('550 5.7.60 SMTP; Client does not have permissions', 550), '5.7.60');
  assert.equal(enhancedStatus('451 try later', 451), '4.0.0');
});

test('line normalizer: bare CR/LF become CRLF across chunks, long lines folded at 998', T, async () => {
  const out = await collect([Buffer.from('a\nb\r'), Buffer.from('\nc\rd\r'), Buffer.from('e')]);
  assert.equal(out.toString(), 'a\r\nb\r\nc\r\nd\r\ne');
  const long = await collect([Buffer.from(`${'x'.repeat(2500)}\r\nshort\r\n`)]);
  const lines = long.toString().split('\r\n');
  assert.ok(lines.every((l) => l.length <= 998), 'no line over 998');
  assert.equal(lines[0].length, 998);
  assert.equal(lines[1], ` ${'x'.repeat(997)}`);
  assert.equal(lines.join('').replace(/ /g, '').length, 2500 + 5);
});

test('per-recipient fates: accepted, refused 550 and deferred 451 in one transaction', T, async (t) => {
  const up = await startUpstream({ rcpt: (a) => (a.startsWith('bad') ? [550, '5.1.1 User unknown'] : a.startsWith('later') ? [451, '4.2.0 Try again later'] : undefined) });
  t.after(() => up.close());
  const tr = createSmtpTransport(upstreamSchema.parse({ name: 'plain', url: `smtp://127.0.0.1:${up.port}` }), { logger: silentLogger(), hostname: 'relay.test' });
  t.after(() => tr.close());
  const out = await tr.send(message('Subject: fates\r\n\r\nhi\r\n', ['good@x.org', 'bad@x.org', 'later@x.org']));
  const by = Object.fromEntries(out.map((o) => [o.recipient, o]));
  assert.equal(by['good@x.org'].action, 'delivered');
  assert.equal(by['bad@x.org'].action, 'failed');
  assert.equal(by['bad@x.org'].status, '5.1.1');
  assert.equal(by['bad@x.org'].replyCode, 550);
  assert.match(by['bad@x.org'].diagnostic!, /User unknown/);
  assert.equal(by['later@x.org'].action, 'delayed');
  assert.equal(by['later@x.org'].status, '4.2.0');
  assert.equal(up.received.length, 1);
  assert.deepEqual(up.received[0].to, ['good@x.org']);
});

test('all recipients refused, and a 554 after the data', T, async (t) => {
  const up = await startUpstream({ rcpt: () => [550, '5.7.1 Relaying denied'] });
  t.after(() => up.close());
  const tr = createSmtpTransport(upstreamSchema.parse({ name: 'p', url: `smtp://127.0.0.1:${up.port}` }), { logger: silentLogger(), hostname: 'relay.test' });
  t.after(() => tr.close());
  const out = await tr.send(message('Subject: x\r\n\r\nx\r\n', ['a@x.org', 'b@x.org']));
  assert.deepEqual(out.map((o) => [o.action, o.status]), [['failed', '5.7.1'], ['failed', '5.7.1']]);
  up.behaviour.rcpt = undefined;
  up.behaviour.data = () => [554, '5.6.0 Content rejected'];
  const out2 = await tr.send(message('Subject: x\r\n\r\nx\r\n', ['a@x.org']));
  assert.equal(out2[0].action, 'failed');
  assert.equal(out2[0].status, '5.6.0');
});

test('connection refused → 4.4.1 delayed for every recipient', T, async () => {
  const up = await startUpstream();
  const port = up.port;
  await up.close();
  const tr = createSmtpTransport(upstreamSchema.parse({ name: 'down', url: `smtp://127.0.0.1:${port}`, timeout: 5 }), { logger: silentLogger(), hostname: 'relay.test' });
  const out = await tr.send(message('Subject: x\r\n\r\nx\r\n', ['a@x.org', 'b@x.org']));
  await tr.close();
  assert.deepEqual(out.map((o) => [o.action, o.status, o.possibleDuplicate]), [['delayed', '4.4.1', undefined], ['delayed', '4.4.1', undefined]]);
});

test('connection dropped after the final dot → delayed, possibleDuplicate', T, async (t) => {
  const up = await startUpstream({ dropAfterDot: 1 });
  t.after(() => up.close());
  const tr = createSmtpTransport(upstreamSchema.parse({ name: 'p', url: `smtp://127.0.0.1:${up.port}` }), { logger: silentLogger(), hostname: 'relay.test' });
  t.after(() => tr.close());
  const out = await tr.send(message('Subject: dup\r\n\r\nx\r\n', ['a@x.org']));
  assert.equal(out[0].action, 'delayed');
  assert.equal(out[0].possibleDuplicate, true);
  assert.equal(up.received.length, 1, 'the upstream did get it');
});

test('STARTTLS + AUTH with a self-signed certificate trusted through ca; long lines folded and bare LF fixed on the wire', T, async (t) => {
  const up = await startUpstream({ auth: { user: 'scanner@contoso.com', pass: 's3cret!' } }, true);
  t.after(() => up.close());
  const dir = await mkdtemp(path.join(os.tmpdir(), 'sh-smtp-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const ca = path.join(dir, 'ca.pem');
  await writeFile(ca, up.certPem!);
  const lines: string[] = [];
  const cfg = upstreamSchema.parse({ name: 'tls', url: `smtp+starttls://127.0.0.1:${up.port}`, username: 'scanner@contoso.com', password: 's3cret!', ca });
  const tr = createSmtpTransport(cfg, { logger: silentLogger(), hostname: 'relay.test', trace: (l) => lines.push(l) });
  t.after(() => tr.close());
  assert.deepEqual(await tr.verify!(), { ok: true, detail: `tls: connected to 127.0.0.1:${up.port} and authenticated as scanner@contoso.com` });
  const out = await tr.send(message(`Subject: tls\nX-Long: ${'y'.repeat(3000)}\n\nbody\n`, ['a@x.org']));
  assert.equal(out[0].action, 'delivered', JSON.stringify(out));
  const got = up.received[0];
  assert.equal(got.user, 'scanner@contoso.com');
  const text = got.data.toString();
  assert.ok(text.split('\r\n').every((l) => l.length <= 998));
  assert.doesNotMatch(text.replace(/\r\n/g, ''), /[\r\n]/, 'no bare CR or LF');
  assert.ok(lines.some((l) => /STARTTLS/.test(l)), 'trace shows the dialogue');
  assert.ok(!lines.join('\n').includes('s3cret!'), 'password never in the trace');
  assert.ok(!lines.join('\n').includes(Buffer.from('\u0000scanner@contoso.com\u0000s3cret!').toString('base64')), 'encoded password never in the trace');
});

test('without ca the self-signed certificate is refused; wrong password is routeBroken', T, async (t) => {
  const up = await startUpstream({ auth: { user: 'u', pass: 'right' } }, true);
  t.after(() => up.close());
  const strict = createSmtpTransport(upstreamSchema.parse({ name: 'strict', url: `smtp+starttls://127.0.0.1:${up.port}`, username: 'u', password: 'right' }), { logger: silentLogger(), hostname: 'relay.test' });
  const out = await strict.send(message('Subject: x\r\n\r\nx\r\n', ['a@x.org']));
  await strict.close();
  assert.equal(out[0].action, 'delayed');
  assert.match(out[0].diagnostic!, /certificate/i);
  const wrong = createSmtpTransport(upstreamSchema.parse({ name: 'wrong', url: `smtp+starttls://127.0.0.1:${up.port}`, username: 'u', password: 'nope', verifyCertificate: false }), { logger: silentLogger(), hostname: 'relay.test' });
  const out2 = await wrong.send(message('Subject: x\r\n\r\nx\r\n', ['a@x.org']));
  await wrong.close();
  assert.equal(out2[0].action, 'delayed');
  assert.equal(out2[0].routeBroken, true);
  assert.equal(out2[0].replyCode, 535);
  assert.equal(up.received.length, 0);
});

test('xoauth2: a refused token is renewed once, then the refusal is reported (no loop)', T, async (t) => {
  const up = await startUpstream({ auth: { user: 'box@contoso.com', pass: 'token-2' } }, true);
  t.after(() => up.close());
  const asked: boolean[] = [];
  let next = 1;
  const tokenProvider = async (o?: { renew?: boolean }) => { asked.push(Boolean(o?.renew)); return `token-${next++}`; };
  const cfg = upstreamSchema.parse({ name: 'oauth', url: `smtp+starttls://127.0.0.1:${up.port}`, auth: 'xoauth2', mailbox: 'box@contoso.com', verifyCertificate: false, oauth: { tenant: 'contoso.onmicrosoft.com', clientId: 'app', clientSecret: 'x' } });
  const tr = createSmtpTransport(cfg, { logger: silentLogger(), hostname: 'relay.test', tokenProvider, pool: false });
  const ok = await tr.send(message('Subject: x\r\n\r\nx\r\n', ['a@x.org']));
  assert.equal(ok[0].action, 'delivered', JSON.stringify(ok));
  assert.deepEqual(asked, [false, true]);
  up.behaviour.auth = { user: 'box@contoso.com', pass: 'never' };
  const before = up.authAttempts;
  const bad = await tr.send(message('Subject: x\r\n\r\nx\r\n', ['a@x.org']));
  await tr.close();
  assert.equal(bad[0].routeBroken, true);
  // bounded, never a loop: nodemailer renews once on a 334 challenge, and the transport may send once
  // more after a plain 535 (Exchange Online style) — at most two logins of two AUTH steps each
  assert.ok(up.authAttempts - before <= 4, `bounded renewals, got ${up.authAttempts - before} AUTH attempts`);
  assert.ok(asked.filter(Boolean).length <= 3, `token renewals bounded, got ${asked.filter(Boolean).length}`);
});

test('a message larger than the upstream\'s advertised SIZE fails permanently as 5.3.4 without being sent', T, async (t) => {
  const up = await startUpstream({ size: 1000 });
  t.after(() => up.close());
  const tr = createSmtpTransport(upstreamSchema.parse({ name: 'small', url: `smtp://127.0.0.1:${up.port}` }), { logger: silentLogger(), hostname: 'relay.test' });
  t.after(() => tr.close());
  const out = await tr.send(message(`Subject: big\r\n\r\n${'z'.repeat(5000)}\r\n`, ['a@x.org']));
  assert.equal(out[0].action, 'failed', JSON.stringify(out));
  assert.equal(out[0].status, '5.3.4');
  assert.equal(up.received.length, 0);
  const ok = await tr.send(message('Subject: small\r\n\r\nok\r\n', ['a@x.org']));
  assert.equal(ok[0].action, 'delivered');
});
