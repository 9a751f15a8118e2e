import { test } from 'node:test';
import assert from 'node:assert/strict';
import { simpleParser } from 'mailparser';
import { reconcileRecipients } from '../../src/transports/graph-mime.ts';

const raw = Buffer.from([
  'From: scanner@contoso.com',
  'To: =?UTF-8?B?SsO2cmc=?= <joerg@contoso.com>,',
  ' "Smith, Bob" <bob@contoso.com>',
  'Cc: carol@contoso.com',
  'Subject: x',
  '',
  'To: not a header',
  '',
].join('\r\n'));

test('headers already matching the envelope are left byte for byte', () => {
  const r = reconcileRecipients(raw, ['joerg@contoso.com', 'BOB@contoso.com', 'carol@contoso.com']);
  assert.equal(r.changed, false);
  assert.equal(r.message, raw);
});

test('a retry for one remaining recipient mails only that one; encoded and quoted names survive', async () => {
  const r = reconcileRecipients(raw, ['bob@contoso.com']);
  assert.equal(r.changed, true);
  assert.deepEqual(r.removed, ['joerg@contoso.com', 'carol@contoso.com']);
  const m = await simpleParser(r.message);
  assert.deepEqual((m.to as { value: { address: string; name: string }[] }).value, [{ address: 'bob@contoso.com', name: 'Smith, Bob' }]);
  assert.equal(m.cc, undefined);
  assert.equal(m.bcc, undefined);
  assert.ok(r.message.toString().endsWith('\r\n\r\nTo: not a header\r\n'));
  const j = reconcileRecipients(raw, ['joerg@contoso.com', 'x@fabrikam.com']);
  const mj = await simpleParser(j.message);
  assert.deepEqual((mj.to as { value: { address: string; name: string }[] }).value, [{ address: 'joerg@contoso.com', name: 'Jörg' }]);
  assert.deepEqual(j.bcc, ['x@fabrikam.com']);
  assert.match(j.message.toString(), /\r\nBcc: <x@fabrikam\.com>\r\n\r\n/);
});
