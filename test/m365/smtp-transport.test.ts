// The SMTP transport (src/transports/smtp.ts, relay core) with this token source, against the
// Exchange Online stand-in: the path an `auth: xoauth2` upstream takes in production.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { parseConfigText } from '../../src/config/load.ts';
import { silentLogger } from '../../src/core/logger.ts';
import { ManualClock } from '../../src/core/clock.ts';
import { createTokenProvider } from '../../src/m365/tokens.ts';
import { smtpTokenSource } from '../../src/m365/xoauth2.ts';
import { createSmtpTransport } from '../../src/transports/smtp.ts';
import { startIdentity, type IdentityStandIn } from '../helpers/m365/identity.ts';
import { startExchangeSmtp, type SmtpStandIn } from '../helpers/m365/smtp.ts';
import { loopbackCert, tempDir } from '../helpers/m365/pki.ts';
import { outbound } from '../helpers/m365/message.ts';

let idp: IdentityStandIn;
let exo: SmtpStandIn;
let tmp: ReturnType<typeof tempDir>;
let caFile: string;
const MAILBOX = 'scanner@contoso.com';

before(async () => {
  tmp = tempDir();
  const tls = await loopbackCert();
  caFile = tmp.write('ca.pem', tls.cert);
  idp = await startIdentity(tls);
  exo = await startExchangeSmtp(tls, idp);
  idp.register({ clientId: 'smtp-app', secret: 'x', roles: { 'https://outlook.office365.com': ['SMTP.SendAsApp'] } });
  exo.fullAccess.set('smtp-app', [MAILBOX]);
});
after(async () => { await exo.close(); await idp.close(); tmp.cleanup(); });

function transport(clock?: ManualClock) {
  const u = parseConfigText(`upstreams:
  - name: o365
    url: smtp+starttls://127.0.0.1:${exo.port}
    auth: xoauth2
    username: ${MAILBOX}
    mailbox: ${MAILBOX}
    ca: ${caFile}
    oauth: { tenant: ${idp.tenantDomain}, clientId: smtp-app, clientSecret: x, authority: ${idp.base} }
`, path.join(tmp.dir, 'c.yaml')).upstreams[0];
  const tokens = createTokenProvider(u, { logger: silentLogger(), mailroot: tmp.dir, clock });
  return { tokens, t: createSmtpTransport(u, { logger: silentLogger(), hostname: 'relay.test', tokenProvider: smtpTokenSource(tokens), pool: false }) };
}

const msg = () => outbound(`From: ${MAILBOX}\nTo: alice@contoso.com\nSubject: scan\n\nhi\n`, MAILBOX, ['alice@contoso.com']);

// Exchange Online answers a refused token with a plain `535 5.7.3` (no 334 challenge, so nodemailer
// itself never renews): smtp.ts asks the token source again with renew and sends exactly once more.
test('token expiry while messages wait: the expired token is refused once, renewed, delivered', async () => {
  idp.tokenLifetime = 2;
  try {
    const { tokens, t } = transport(new ManualClock(Date.now()));
    await tokens.getToken();
    await new Promise((r) => setTimeout(r, 2200));
    const before = exo.auths.length;
    const out = await t.send(msg());
    await t.close();
    assert.equal(out[0].action, 'delivered', JSON.stringify(out));
    assert.deepEqual(exo.auths.slice(before).map((a) => a.slice(0, 5)), ['5.7.3', '235']);
  } finally {
    idp.tokenLifetime = 3600;
  }
});

test('535 5.7.139: the outcome is routeBroken (the queue parks the upstream), not a bounce', async () => {
  exo.smtpAuthDisabled = true;
  try {
    const { t } = transport();
    const out = await t.send(msg());
    await t.close();
    assert.equal(out[0].routeBroken, true, JSON.stringify(out));
    assert.notEqual(out[0].action, 'failed');
    assert.match(out[0].diagnostic ?? '', /5\.7\.139/);
  } finally {
    exo.smtpAuthDisabled = false;
  }
});

test('a fresh token refused again (no FullAccess): one renewal, then routeBroken — never a loop', async () => {
  exo.fullAccess.set('smtp-app', []);
  try {
    const { t } = transport();
    const before = exo.auths.length;
    const out = await t.send(msg());
    await t.close();
    assert.equal(out[0].action, 'delayed', JSON.stringify(out));
    assert.equal(out[0].routeBroken, true);
    assert.deepEqual(exo.auths.slice(before).map((a) => a.slice(0, 5)), ['5.7.3', '5.7.3']);
  } finally {
    exo.fullAccess.set('smtp-app', [MAILBOX]);
  }
});

test('no token at all (client secret refused): the outcome reason is Entra ID\'s, in plain words', async () => {
  idp.register({ clientId: 'smtp-app', secret: 'rotated', roles: { 'https://outlook.office365.com': ['SMTP.SendAsApp'] } });
  try {
    const { t } = transport();
    const before = exo.auths.length;
    const out = await t.send(msg());
    await t.close();
    assert.equal(out[0].action, 'delayed', JSON.stringify(out));
    assert.match(out[0].reason ?? '', /Entra ID refused the token request/);
    assert.match(out[0].reason ?? '', /7000215/);
    assert.equal(exo.auths.length, before, 'no AUTH attempted without a token');
  } finally {
    idp.register({ clientId: 'smtp-app', secret: 'x', roles: { 'https://outlook.office365.com': ['SMTP.SendAsApp'] } });
  }
});
