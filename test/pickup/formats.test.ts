import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parsePickupFile, type PickupMessage } from '../../src/pickup/formats.ts';

const opts = { hostname: 'relay.test', now: new Date(Date.UTC(2026, 10, 25, 12, 0, 0)) };

function ok(raw: string | Buffer): PickupMessage {
  const r = parsePickupFile(Buffer.isBuffer(raw) ? raw : Buffer.from(raw, 'utf8'), opts);
  if ('error' in r) assert.fail(`unexpected error: ${r.error}`);
  return r;
}

function bad(raw: string | Buffer): string {
  const r = parsePickupFile(Buffer.isBuffer(raw) ? raw : Buffer.from(raw, 'utf8'), opts);
  assert.ok('error' in r, 'expected the file to be refused');
  return r.error;
}

test('.NET SmtpClient / IIS drop file: X-Sender / X-Receiver give the envelope and are removed', () => {
  const m = ok([
    'X-Sender: app@example.org',
    'X-Receiver: one@example.com',
    'X-Receiver: <two@example.com>',
    'MIME-Version: 1.0',
    'From: Invoicing <invoicing@example.org>',
    'To: someone-else@example.com',
    'Date: Wed, 25 Nov 2026 11:00:00 +0000',
    'Subject: Invoice 42',
    'Content-Type: text/plain; charset=us-ascii',
    '',
    'Please find the invoice.',
    '',
  ].join('\r\n'));
  assert.equal(m.format, 'iis');
  assert.equal(m.mailFrom, 'app@example.org');
  assert.deepEqual(m.recipients, ['one@example.com', 'two@example.com']);
  const text = m.content.toString();
  assert.doesNotMatch(text, /X-Sender|X-Receiver/i);
  assert.match(text, /^MIME-Version: 1\.0\r\n/);
  assert.match(text, /Date: Wed, 25 Nov 2026 11:00:00 \+0000\r\n/);
  assert.equal((text.match(/^Date:/gm) ?? []).length, 1, 'an existing Date is kept, not doubled');
  assert.equal(m.subject, 'Invoice 42');
  assert.equal(m.headerFrom, 'invoicing@example.org');
});

test('plain RFC 5322: recipients from To/Cc/Bcc, sender from Sender else From, Bcc removed', () => {
  const m = ok([
    'From: Scanner <scanner@example.org>',
    'Sender: relay-user@example.org',
    'To: A <a@example.com>, b@example.com',
    'Cc: c@example.com',
    'Bcc: secret@example.com,',
    ' other-secret@example.com',
    'Subject: =?UTF-8?B?U2NhbiDDqXTDqQ==?=',
    '',
    'body',
  ].join('\n'));
  assert.equal(m.format, 'rfc5322');
  assert.equal(m.mailFrom, 'relay-user@example.org');
  assert.deepEqual(m.recipients, ['a@example.com', 'b@example.com', 'c@example.com', 'secret@example.com', 'other-secret@example.com']);
  const text = m.content.toString();
  assert.doesNotMatch(text, /secret/, 'the Bcc header (with its continuation line) is gone');
  assert.doesNotMatch(text.replace(/\r\n/g, ''), /[\r\n]/, 'CRLF everywhere');
  assert.match(text, /^Message-ID: <[^>]+@relay\.test>$/m);
  assert.equal(m.subject, 'Scan été');
  const noSender = ok('From: x@example.org\nTo: y@example.com\n\nhi\n');
  assert.equal(noSender.mailFrom, 'x@example.org');
});

test('the seed\'s Email.txt (FROM: / TO: / SUBJECT:, Notepad with a BOM) gets Date and Message-ID', () => {
  const text = 'FROM: invoicing@shortstraw.be\r\nTO: oliver@shortstraw.be\r\nSUBJECT: Test email\r\n\r\nThis is a test email sent from my SMTP server\r\n';
  for (const raw of [Buffer.from(text), Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(text)]), Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, 'utf16le')])]) {
    const m = ok(raw);
    assert.equal(m.mailFrom, 'invoicing@shortstraw.be');
    assert.deepEqual(m.recipients, ['oliver@shortstraw.be']);
    assert.equal(m.subject, 'Test email');
    const out = m.content.toString();
    assert.match(out, /^FROM: invoicing@shortstraw\.be\r\nTO: oliver@shortstraw\.be\r\nSUBJECT: Test email\r\nDate: Wed, 25 Nov 2026 12:00:00 \+0000\r\nMessage-ID: <.+@relay\.test>\r\n\r\nThis is a test email sent from my SMTP server\r\n$/);
  }
});

test('malformed files are refused with a reason in plain words', () => {
  assert.match(bad(''), /empty/);
  assert.match(bad(Buffer.from([0x4d, 0x5a, 0x90, 0x00, 0x03, 0x00, 0x00, 0x00])), /binary/);
  assert.match(bad('Hello, please send this to bob.\nThanks\n'), /No message headers/);
  assert.match(bad('From: a@example.org\nSubject: nobody\n\nbody\n'), /No recipients/);
  assert.match(bad('To: b@example.org\nSubject: no sender\n\nbody\n'), /No sender/);
  // The recipe's placeholder text left in the file.
  assert.match(bad('FROM: <source email address>\nTO: <destination email address>\nSUBJECT: Test email\n\nx\n'), /not an e-mail address/i);
});

test('a .BAD file from badmail/ (X-Sender: <>, folded Received header) is read back for resending', () => {
  const m = ok([
    'X-Sender: <>',
    'X-Receiver: failed@example.com',
    'Received: from client.test ([127.0.0.1])',
    '\tby relay.test with ESMTP id abc.1',
    '\tfor <failed@example.com>; Wed, 25 Nov 2026 10:00:00 +0000',
    'From: MAILER-DAEMON@relay.test',
    'To: failed@example.com, other@example.com',
    'Subject: bounce',
    'Date: Wed, 25 Nov 2026 10:00:00 +0000',
    'Message-ID: <x@relay.test>',
    '',
    'text',
    '',
  ].join('\r\n'));
  assert.equal(m.mailFrom, '');
  assert.deepEqual(m.recipients, ['failed@example.com'], 'only the recipients that failed, not every To:');
  assert.match(m.content.toString(), /^Received: from client\.test \(\[127\.0\.0\.1\]\)\r\n\tby relay\.test with ESMTP id abc\.1\r\n\tfor <failed@example\.com>; /);
});
