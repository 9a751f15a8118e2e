import { test } from 'node:test';
import assert from 'node:assert/strict';
import { explainM365 } from '../../src/m365/errors.ts';

test('send-as refusals: 5.7.60, the older 5.7.1 text and STOREDRV SendAsDenied, all message-level', () => {
  for (const [code, enh, text] of [
    [550, '5.7.60', '5.7.60 SMTP; Client does not have permissions to send as this sender'],
    [550, '5.7.1', '5.7.1 Client does not have permissions to send as this sender'],
    [554, undefined, '554 5.2.0 STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied'],
    [403, undefined, '{"error":{"code":"ErrorSendAsDenied","message":"The user account which was used to submit this request does not have the right to send mail on behalf of the specified sending account."}}'],
  ] as const) {
    const e = explainM365(code, enh, text);
    assert.ok(e, text);
    assert.match(e.fix, /Send As/);
    assert.equal(e.routeBroken, false, text);
  }
});

test('route-broken replies park the upstream; message-level ones do not', () => {
  const broken: [number, string | undefined, string][] = [
    [535, '5.7.139', 'Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled'],
    [535, '5.7.3', 'Authentication unsuccessful [AM0PR01CA0000.eurprd01.prod.exchangelabs.com]'],
    [550, '5.7.30', 'Basic authentication is not supported for Client Submission.'],
    [530, '5.7.57', 'Client was not authenticated to send anonymous mail during MAIL FROM'],
    [550, '5.2.252', 'Sender throttled due to continuous send as denied errors.'],
    [550, '5.7.64', 'TenantAttribution; Relay Access Denied'],
    [550, '5.7.68', 'TenantInboundAttribution; Direct Send not allowed for this organization from unauthorized sources'],
    [550, '5.7.708', 'Access denied, traffic not accepted from this IP.'],
    [550, '5.7.620', 'Access denied, banned sending IP [203.0.113.9]'],
    [550, '5.1.8', 'Access denied, bad outbound sender'],
    [0, undefined, 'invalid_grant: AADSTS50173: The provided grant has expired due to it being revoked'],
    [0, undefined, 'AADSTS7000215: Invalid client secret provided.'],
    [403, undefined, 'MailboxNotEnabledForRESTAPI'],
    [403, undefined, 'ErrorAccessDenied: Access is denied. Check credentials and try again.'],
  ];
  for (const [c, e, t] of broken) assert.equal(explainM365(c, e, t)?.routeBroken, true, t);
  const message: [number, string | undefined, string][] = [
    [550, '5.6.11', 'SMTPSEND.BareLinefeedsAreIllegal; message contains bare linefeeds'],
    [451, '4.7.500', 'Server busy. Please try again later from [203.0.113.9]. (S77719) [AS1234]'],
    [552, '5.3.4', 'Message size exceeds fixed maximum message size'],
    [452, '4.5.3', 'Too many recipients'],
    [429, undefined, 'ApplicationThrottled'],
  ];
  for (const [c, e, t] of message) assert.equal(explainM365(c, e, t)?.routeBroken, false, t);
});

test('codes are matched exactly or by range, never by prefix; unknown replies give undefined', () => {
  assert.equal(explainM365(550, '5.7.608', 'x')?.id, '5.7.606-649');
  assert.equal(explainM365(550, '5.7.60', 'x')?.id, '5.7.60');
  assert.equal(explainM365(550, undefined, '550 5.7.139 Authentication unsuccessful, user is locked by your organization\'s security defaults policy')?.id, '5.7.139-policy');
  assert.equal(explainM365(250, '2.0.0', 'OK'), undefined);
  assert.equal(explainM365(550, '5.9.99', 'something else'), undefined);
  for (const id of ['5.2.251', '5.2.253', '5.2.254', '5.2.255']) assert.equal(explainM365(550, id, '')?.id, id);
  const e = explainM365(550, '5.2.2', 'Submission quota exceeded');
  assert.match(e!.meaning, /10,000/);
});
