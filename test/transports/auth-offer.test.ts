// Configured credentials are never silently dropped (src/transports/auth-offer.ts): against real
// SMTP servers on loopback that offer no AUTH, or not the mechanism the credentials need, the
// transport fails the delivery as a credentials problem (routeBroken: the route is parked) with the
// reason in words, and the server gets no message; verify() (the console's test, doctor) fails too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { createSmtpTransport } from '../../src/transports/smtp.ts';
import { createThreadedSmtpTransport } from '../../src/transports/smtp-thread.ts';
import { silentLogger } from '../../src/core/logger.ts';
import { upstreamSchema } from '../../src/config/sections/upstreams.ts';
import type { OutboundMessage } from '../../src/core/types.ts';
import { startUpstream } from './upstream-server.ts';

const T = { timeout: 30_000 };

function message(recipients: string[]): OutboundMessage {
  const buf = Buffer.from('Subject: x\r\n\r\nx\r\n');
  return { id: 'Q1', mailFrom: 'printer@example.com', recipients, size: buf.length, open: () => Readable.from([buf]), read: async () => buf };
}

test('username/password to a server that offers no AUTH: not sent, routeBroken, the reason says so', T, async (t) => {
  const up = await startUpstream({}); // plain SMTP, AUTH disabled: an open relay on the wrong port
  t.after(() => up.close());
  const cfg = upstreamSchema.parse({ name: 'isp', url: `smtp://127.0.0.1:${up.port}`, username: 'scanner@contoso.com', password: 's3cret!' });
  for (const pool of [true, false]) {
    const tr = createSmtpTransport(cfg, { logger: silentLogger(), hostname: 'relay.test', pool });
    const out = await tr.send(message(['a@x.org', 'b@x.org']));
    const verified = await tr.verify!();
    await tr.close();
    assert.deepEqual(out.map((o) => [o.action, o.status, o.routeBroken]), [['delayed', '4.7.0', true], ['delayed', '4.7.0', true]], JSON.stringify(out));
    assert.match(out[0].reason!, /^isp: 127\.0\.0\.1:\d+ offered no AUTH in its EHLO reply, so the configured credentials could not be used; smarthost does not send mail unauthenticated/);
    assert.match(out[0].reason!, /try smtp\+starttls:\/\/ or smtps:\/\//);
    assert.equal(verified.ok, false);
    assert.match(verified.detail, /offered no AUTH/);
  }
  assert.equal(up.received.length, 0, 'the mail never went out unauthenticated');
  assert.equal(up.authAttempts, 0, 'no credentials were sent to a server that did not ask');
});

test('xoauth2 to a server offering AUTH PLAIN LOGIN only: not sent, no token retry loop, the reason names XOAUTH2', T, async (t) => {
  const up = await startUpstream({ auth: { user: 'box@contoso.com', pass: 'token' }, authMethods: ['PLAIN', 'LOGIN'] }, true);
  t.after(() => up.close());
  let asked = 0;
  const cfg = upstreamSchema.parse({ name: 'oauth', url: `smtp+starttls://127.0.0.1:${up.port}`, auth: 'xoauth2', mailbox: 'box@contoso.com', verifyCertificate: false, oauth: { tenant: 'contoso.onmicrosoft.com', clientId: 'app', clientSecret: 'x' } });
  const tr = createSmtpTransport(cfg, { logger: silentLogger(), hostname: 'relay.test', pool: false, tokenProvider: async () => { asked++; return 'token'; } });
  const out = await tr.send(message(['a@x.org']));
  await tr.close();
  assert.equal(out[0].routeBroken, true);
  assert.match(out[0].reason!, /offered AUTH PLAIN LOGIN but not XOAUTH2, which OAuth2 \(auth: xoauth2\) needs/);
  assert.equal(up.received.length, 0);
  assert.equal(up.authAttempts, 0);
  assert.equal(asked, 0, 'no token asked for a server that cannot take it');
});

test('a password to a server offering only XOAUTH2: refused before sending anything', T, async (t) => {
  const up = await startUpstream({ auth: { user: 'u', pass: 'p' }, authMethods: ['XOAUTH2'] }, true);
  t.after(() => up.close());
  const tr = createSmtpTransport(upstreamSchema.parse({ name: 'm', url: `smtp+starttls://127.0.0.1:${up.port}`, username: 'u', password: 'p', verifyCertificate: false }), { logger: silentLogger(), hostname: 'relay.test', pool: false });
  const out = await tr.send(message(['a@x.org']));
  await tr.close();
  assert.equal(out[0].routeBroken, true);
  assert.match(out[0].reason!, /offered AUTH XOAUTH2 but not PLAIN, LOGIN, CRAM-MD5/);
  assert.equal(up.authAttempts, 0);
  assert.equal(up.received.length, 0);
});

test('threaded transport: the same refusal from the delivery thread; with AUTH offered it authenticates and delivers', T, async (t) => {
  const open = await startUpstream({});
  t.after(() => open.close());
  const tr = await createThreadedSmtpTransport(upstreamSchema.parse({ name: 'isp', url: `smtp://127.0.0.1:${open.port}`, username: 'u', password: 'p' }), { logger: silentLogger(), hostname: 'relay.test' });
  const raw = Buffer.from('Subject: x\r\n\r\nx\r\n');
  const out = await tr.send({ id: 'Q2', mailFrom: 'p@example.com', recipients: ['a@x.org'], size: raw.length, open: () => Readable.from([raw]), read: async () => raw, locate: () => ({ buffer: raw }) });
  await tr.close();
  assert.equal(out[0].routeBroken, true);
  assert.match(out[0].reason!, /offered no AUTH/);
  assert.equal(open.received.length, 0);

  const auth = await startUpstream({ auth: { user: 'u', pass: 'p' } }, true);
  t.after(() => auth.close());
  const ok = await createThreadedSmtpTransport(upstreamSchema.parse({ name: 'isp', url: `smtp+starttls://127.0.0.1:${auth.port}`, username: 'u', password: 'p', verifyCertificate: false }), { logger: silentLogger(), hostname: 'relay.test' });
  const out2 = await ok.send({ id: 'Q3', mailFrom: 'p@example.com', recipients: ['a@x.org'], size: raw.length, open: () => Readable.from([raw]), read: async () => raw, locate: () => ({ buffer: raw }) });
  await ok.close();
  assert.equal(out2[0].action, 'delivered', JSON.stringify(out2));
  assert.equal(auth.received[0].user, 'u');
});
