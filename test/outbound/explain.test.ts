import { test } from 'node:test';
import assert from 'node:assert/strict';
import { explainOutcome, explainReply } from '../../src/outbound/explain.ts';
import { buildDsn } from '../../src/outbound/ndr.ts';
import { reportRecipients } from '../../src/outbound/reports.ts';

test('explanations: send-as, authentication, unknown recipient, too big, network, expiry', () => {
  const sendAs = explainReply(550, '5.7.60', '550 5.7.60 SMTP; Client does not have permissions to send as this sender');
  assert.match(sendAs.fix, /Send As/i);
  assert.equal(explainReply(535, '5.7.139', '535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant').routeBroken, true);
  assert.equal(explainReply(530, '5.7.57', '530 5.7.57 Client not authenticated to send mail').routeBroken, true);
  assert.match(explainReply(550, '5.1.1', '550 5.1.1 User unknown').meaning, /does not exist/);
  assert.match(explainReply(552, '5.3.4', '552 5.3.4 Message size exceeds fixed maximum message size').meaning, /too big|larger than/);
  assert.match(explainReply(undefined, '4.4.1', 'ECONNECTION: connect ECONNREFUSED').meaning, /could not be reached/);
  assert.match(explainReply(undefined, '4.4.7', 'expired').meaning, /expired/);
  assert.equal(explainReply(550, '5.1.1', 'x').routeBroken, false);
  assert.match(explainReply(554, undefined, '554 no').meaning, /permanently/);
});

test('DSN: RFC 3464 parts, non-ASCII subject encoded, headers attached', () => {
  const now = new Date(Date.UTC(2026, 10, 25, 12));
  const dsn = buildDsn({
    kind: 'failed', queueId: 'Q1', reportingMta: 'relay.test', from: 'MAILER-DAEMON@relay.test', to: ['printer@contoso.com'], originalSender: 'printer@contoso.com',
    originalSubject: 'Scan für Büro', arrivalDate: now, now, originalHeaders: 'Subject: x\r\nFrom: printer@contoso.com',
    outcomes: [{ recipient: 'a@x.org', action: 'failed', status: '5.1.1', diagnostic: '550 5.1.1 User unknown', remoteMta: 'mx.x.org', transport: 'smtp', at: now.toISOString() }],
  }).toString();
  assert.match(dsn, /^Subject: =\?UTF-8\?B\?/m);
  assert.match(dsn, /^Auto-Submitted: auto-replied$/m);
  assert.match(dsn, /Content-Type: message\/delivery-status\r\n\r\nReporting-MTA: dns; relay\.test\r\nArrival-Date: .*\r\n\r\nFinal-Recipient: rfc822; a@x\.org\r\nAction: failed\r\nStatus: 5\.1\.1\r\nRemote-MTA: dns; mx\.x\.org\r\nDiagnostic-Code: smtp; 550 5\.1\.1 User unknown/);
  assert.match(dsn, /Content-Type: text\/rfc822-headers\r\n\r\nSubject: x\r\nFrom: printer@contoso\.com\r\n/);
  assert.doesNotMatch(dsn.replace(/\r\n/g, ''), /[\r\n]/);
});

test('report recipients follow ndr.to and never include anyone for a null sender', () => {
  const cfg = (to: 'sender' | 'admin' | 'both' | 'off') => ({ hostnameResolved: 'relay.test', ndr: { to, adminCopy: 'pm@contoso.com' } });
  assert.deepEqual(reportRecipients(cfg('sender'), 's@x.org'), ['s@x.org']);
  assert.deepEqual(reportRecipients(cfg('admin'), 's@x.org'), ['pm@contoso.com']);
  assert.deepEqual(reportRecipients(cfg('both'), 's@x.org'), ['s@x.org', 'pm@contoso.com']);
  assert.deepEqual(reportRecipients(cfg('off'), 's@x.org'), []);
  assert.deepEqual(reportRecipients(cfg('both'), ''), []);
});

test('DSN with RET=FULL carries the whole original message as message/rfc822', () => {
  const now = new Date(Date.UTC(2026, 10, 25, 12));
  const original = Buffer.from('Subject: whole\r\nFrom: a@b.c\r\n\r\nthe body\r\n');
  const dsn = buildDsn({
    kind: 'failed', queueId: 'Q2', reportingMta: 'relay.test', from: 'MAILER-DAEMON@relay.test', to: ['a@b.c'], originalSender: 'a@b.c',
    arrivalDate: now, now, originalHeaders: 'Subject: whole', originalMessage: original,
    outcomes: [{ recipient: 'x@y.z', action: 'failed', status: '5.1.1', transport: 'smtp', at: now.toISOString() }],
  }).toString();
  assert.match(dsn, /Content-Type: message\/rfc822\r\n\r\nSubject: whole\r\nFrom: a@b\.c\r\n\r\nthe body\r\n\r\n--=_smarthost_[0-9a-f]+--\r\n$/);
  assert.doesNotMatch(dsn, /text\/rfc822-headers/);
});

test('a send-as refusal through a connector advises connector things, not Add-RecipientPermission', () => {
  const o = { recipient: 'a@b.c', action: 'failed' as const, status: '5.7.60', replyCode: 550, diagnostic: '550 5.7.60 SMTP; Client does not have permissions to send as this sender', at: '' };
  const viaConnector = explainOutcome({ ...o, transport: 'connector' });
  assert.match(viaConnector.fix, /accepted domain/);
  assert.match(viaConnector.fix, /certificate name/);
  assert.doesNotMatch(viaConnector.fix, /Add-RecipientPermission ADDRESS/);
  assert.match(explainOutcome({ ...o, transport: 'smtp' }).fix, /Add-RecipientPermission/);
});

test('durations in words never read "0 hours": minutes under an hour, hours, days', async () => {
  const { wordDuration } = await import('../../src/config/units.ts');
  assert.equal(wordDuration(30 * 60_000), '30 minutes');
  assert.equal(wordDuration(60_000), '1 minute');
  assert.equal(wordDuration(90 * 60_000), '90 minutes');
  assert.equal(wordDuration(3_600_000), '1 hour');
  assert.equal(wordDuration(12 * 3_600_000), '12 hours');
  assert.equal(wordDuration(2 * 86_400_000), '2 days');
  assert.equal(wordDuration(45_000), '45 seconds');
});

test('an expired message: the sender is not told to resend a .BAD file; the admin is', async () => {
  const { explainOutcome } = await import('../../src/outbound/explain.ts');
  const o = { recipient: 'a@x.org', action: 'failed' as const, status: '4.4.7', transport: 'smtp', at: new Date().toISOString() };
  assert.match(explainOutcome(o).fix, /\.BAD/);
  assert.doesNotMatch(explainOutcome(o, 'sender').fix, /\.BAD|pickup/);
});
