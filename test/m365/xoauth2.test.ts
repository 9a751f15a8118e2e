import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import nodemailer from 'nodemailer';
import { parseConfigText } from '../../src/config/load.ts';
import { silentLogger } from '../../src/core/logger.ts';
import { ManualClock } from '../../src/core/clock.ts';
import { createTokenProvider, type TokenProvider } from '../../src/m365/tokens.ts';
import { withTokenRetry, xoauth2Response } from '../../src/m365/xoauth2.ts';
import { explainM365 } from '../../src/m365/errors.ts';
import { basicAuthWarning } from '../../src/m365/basic-auth.ts';
import { startIdentity, type IdentityStandIn } from '../helpers/m365/identity.ts';
import { startExchangeSmtp, type SmtpStandIn } from '../helpers/m365/smtp.ts';
import { loopbackCert, tempDir } from '../helpers/m365/pki.ts';

let idp: IdentityStandIn;
let exo: SmtpStandIn;
let tmp: ReturnType<typeof tempDir>;
let caFile: string;
let ca: string;
const MAILBOX = 'scanner@contoso.com';

before(async () => {
  tmp = tempDir();
  const tls = await loopbackCert();
  ca = tls.cert;
  caFile = tmp.write('ca.pem', tls.cert);
  idp = await startIdentity(tls);
  exo = await startExchangeSmtp(tls, idp);
  idp.register({ clientId: 'smtp-app', secret: 'x', roles: { 'https://outlook.office365.com': ['SMTP.SendAsApp'] } });
  idp.register({ clientId: 'graph-app', secret: 'x', roles: { 'https://graph.microsoft.com': ['Mail.Send'] } });
  exo.fullAccess.set('smtp-app', [MAILBOX]);
  exo.fullAccess.set('graph-app', [MAILBOX]);
  exo.sendAs.set(MAILBOX, ['invoicing@contoso.com']);
});
after(async () => { await exo.close(); await idp.close(); tmp.cleanup(); });

function provider(clientId: string, clock?: ManualClock, scope = ''): TokenProvider {
  const u = parseConfigText(`upstreams:
  - name: o365
    url: smtp+starttls://127.0.0.1:${exo.port}
    auth: xoauth2
    mailbox: ${MAILBOX}
    ca: ${caFile}
    oauth: { tenant: ${idp.tenantDomain}, clientId: ${clientId}, clientSecret: x, authority: ${idp.base}${scope} }
`, path.join(tmp.dir, 'c.yaml')).upstreams[0];
  return createTokenProvider(u, { logger: silentLogger(), mailroot: tmp.dir, clock });
}

/** One submission the way the SMTP transport does it: STARTTLS required, AUTH XOAUTH2 as the mailbox. */
async function submit(token: string, from = MAILBOX) {
  const tx = nodemailer.createTransport({ host: '127.0.0.1', port: exo.port, secure: false, requireTLS: true, tls: { ca }, auth: { type: 'OAuth2', user: MAILBOX, accessToken: token } });
  try {
    return await tx.sendMail({ envelope: { from, to: ['alice@contoso.com'] }, raw: `From: ${from}\r\nTo: alice@contoso.com\r\nSubject: t\r\n\r\nhi\r\n` });
  } finally {
    tx.close();
  }
}

test('the SASL XOAUTH2 string is the documented one', () => {
  const s = Buffer.from(xoauth2Response('a@b.c', 'TOKEN'), 'base64').toString();
  assert.equal(s, 'user=a@b.c\x01auth=Bearer TOKEN\x01\x01');
});

test('app-only XOAUTH2: delivered as the mailbox; Send As addresses pass; others get 5.7.60, explained', async () => {
  const p = provider('smtp-app');
  await withTokenRetry(p, (t) => submit(t));
  await withTokenRetry(p, (t) => submit(t, 'invoicing@contoso.com'));
  assert.deepEqual(exo.received.slice(-2).map((r) => r.mailFrom), [MAILBOX, 'invoicing@contoso.com']);
  await assert.rejects(withTokenRetry(p, (t) => submit(t, 'ceo@contoso.com')), (e: { responseCode?: number; response?: string }) => {
    assert.equal(e.responseCode, 550);
    const x = explainM365(e.responseCode!, undefined, e.response!);
    assert.equal(x?.id, '5.7.60');
    assert.equal(x?.routeBroken, false);
    return true;
  });
});

test('a Graph-audience token or a token without SMTP.SendAsApp is refused with 535 5.7.3', async () => {
  const p = provider('graph-app', undefined, ', scope: https://graph.microsoft.com/.default');
  const before = exo.auths.length;
  await assert.rejects(withTokenRetry(p, (t) => submit(t)), (e: { response?: string }) => /^535 5\.7\.3/.test(e.response ?? ''));
  // one refresh, then it stops: two AUTH attempts, not a loop
  assert.deepEqual(exo.auths.slice(before).map((a) => a.slice(0, 5)), ['5.7.3', '5.7.3']);
  assert.match(exo.auths.at(-1)!, /wrong audience/);
});

test('token expiry while messages wait: an expired token is refused, renewed once, delivered', async () => {
  idp.tokenLifetime = 2;
  try {
    const frozen = new ManualClock(Date.now());
    const p = provider('smtp-app', frozen);
    const stale = await p.getToken();
    await new Promise((r) => setTimeout(r, 2200));
    const before = exo.auths.length;
    const n = exo.received.length;
    await withTokenRetry(p, (t) => submit(t));
    assert.deepEqual(exo.auths.slice(before).map((a) => a.slice(0, 5)), ['5.7.3', '235']);
    assert.match(exo.auths[before], /expired/);
    assert.equal(exo.received.length, n + 1);
    assert.notEqual(await p.getToken(), stale);
  } finally {
    idp.tokenLifetime = 3600;
  }
});

test('535 5.7.139 (SMTP AUTH disabled) is not retried and means the route is broken', async () => {
  exo.smtpAuthDisabled = true;
  try {
    const p = provider('smtp-app');
    const before = exo.auths.length;
    await assert.rejects(withTokenRetry(p, (t) => submit(t)), (e: { responseCode?: number; response?: string }) => {
      const x = explainM365(e.responseCode!, undefined, e.response!);
      assert.equal(x?.routeBroken, true);
      assert.match(x!.fix, /Set-CASMailbox .* -SmtpClientAuthenticationDisabled \$false/);
      return true;
    });
    assert.equal(exo.auths.length - before, 1);
  } finally {
    exo.smtpAuthDisabled = false;
  }
});

test('basic-auth countdown for smtp.office365.com names the date and the OAuth command', () => {
  const u = parseConfigText('upstreams:\n  - name: o365\n    url: smtp+starttls://smtp.office365.com:587\n    username: scanner@contoso.com\n    password: pw\n', '/tmp/b.yaml').upstreams[0];
  const w = basicAuthWarning(u, Date.UTC(2026, 10, 25));
  assert.match(w!, /end of December 2026 \(in 37 days\)/);
  assert.match(w!, /smarthost m365 token --config FILE --upstream o365/);
  assert.match(basicAuthWarning(u, Date.UTC(2027, 1, 1))!, /has turned Basic authentication .* off by default since the end of December 2026/);
  const other = parseConfigText('upstreams:\n  - name: isp\n    url: smtp+starttls://mail.example.net\n    username: u\n    password: pw\n', '/tmp/b.yaml').upstreams[0];
  assert.equal(basicAuthWarning(other, Date.now()), undefined);
});

test('the RBAC set-up works too: an app with no API permission, its role scoped to the mailbox', async () => {
  idp.register({ clientId: 'rbac-app', secret: 'x', roles: {} });
  exo.rbac.set('rbac-app', [MAILBOX]);
  const before = exo.auths.length;
  await withTokenRetry(provider('rbac-app'), (t) => submit(t));
  assert.deepEqual(exo.auths.slice(before), ['235']);
  exo.rbac.set('rbac-app', ['other@contoso.com']); // mailbox taken out of the management scope
  await assert.rejects(withTokenRetry(provider('rbac-app'), (t) => submit(t)), (e: { response?: string }) => /^535 5\.7\.3/.test(e.response ?? ''));
});
