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

// todo: nodemailer asks provisionCallback again with renew=true only after a 334 challenge (Gmail's
// style); Exchange Online answers a refused token with a plain `535 5.7.3`, so smtp.ts reports the
// refusal without renewing. smtp.ts must retry once itself after a 535 (withTokenRetry in
// src/m365/xoauth2.ts does exactly that) and must not let nodemailer cache the token for 5 minutes.
test('token expiry while messages wait: the expired token is refused once, renewed, delivered', { todo: 'needs smtp.ts to renew after a plain 535 (see comment)' }, async () => {
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
