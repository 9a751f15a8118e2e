import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { statSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseConfigText } from '../../src/config/load.ts';
import { silentLogger } from '../../src/core/logger.ts';
import { ManualClock } from '../../src/core/clock.ts';
import { createTokenProvider, loginWithDeviceCode, TokenError } from '../../src/m365/tokens.ts';
import { startIdentity, verifyAccessToken, type IdentityStandIn } from '../helpers/m365/identity.ts';
import { loopbackCert, namedCert, tempDir, thumbprints } from '../helpers/m365/pki.ts';
import { decodeJwt } from '../helpers/m365/jwt.ts';

let idp: IdentityStandIn;
let tmp: ReturnType<typeof tempDir>;
let caFile: string;
let appCert: { cert: string; key: string };

before(async () => {
  tmp = tempDir();
  const tls = await loopbackCert();
  caFile = tmp.write('ca.pem', tls.cert);
  idp = await startIdentity(tls);
  appCert = await namedCert('smarthost-app');
  idp.register({ clientId: 'app-secret', secret: 's3cret~value', roles: { 'https://outlook.office365.com': ['SMTP.SendAsApp'] } });
  idp.register({ clientId: 'app-cert', certificate: appCert.cert, roles: { 'https://graph.microsoft.com': ['Mail.Send'] } });
  idp.register({ clientId: 'app-public', publicClient: true });
});
after(async () => { await idp.close(); tmp.cleanup(); });

function upstream(yaml: string) {
  return parseConfigText(`upstreams:\n${yaml}`, path.join(tmp.dir, 'smarthost.yaml')).upstreams[0];
}

test('client credentials with a secret: SMTP scope, cached, renewed before expiry, invalidate forces a new one', async () => {
  const u = upstream(`  - name: o365
    url: smtp+starttls://127.0.0.1:1
    auth: xoauth2
    mailbox: scanner@contoso.com
    ca: ${caFile}
    oauth: { tenant: ${idp.tenantDomain}, clientId: app-secret, clientSecret: s3cret~value, authority: ${idp.base} }
`);
  const clock = new ManualClock(Date.now());
  const p = createTokenProvider(u, { logger: silentLogger(), mailroot: tmp.dir, clock });
  const t1 = await p.getToken();
  const v = verifyAccessToken(idp, t1, ['https://outlook.office365.com']);
  assert.ok(v.ok, JSON.stringify(v));
  assert.deepEqual(v.ok && v.claims.roles, ['SMTP.SendAsApp']);
  const before = idp.issued.client_credentials;
  assert.equal(await p.getToken(), t1, 'cached');
  assert.ok(p.expiresAt()! > Date.now() + 3000_000);
  clock.advance(3600_000 - 200_000); // inside the last 5 minutes
  const [a, b] = await Promise.all([p.getToken(), p.getToken()]);
  assert.equal(a, b);
  assert.equal(idp.issued.client_credentials, before + 1, 'one renewal for concurrent callers');
  p.invalidate();
  await p.getToken();
  assert.equal(idp.issued.client_credentials, before + 2);
});

test('client credentials with a certificate assertion (PS256 x5t#S256 and RS256 x5t) for Graph', async () => {
  const certFile = tmp.write('app.pem', appCert.cert + appCert.key);
  for (const thumb of ['', `thumbprint: ${thumbprints(appCert.cert).sha1Hex}, `]) {
    const u = upstream(`  - name: g
    url: graph://${idp.tenantDomain}/scanner@contoso.com
    ca: ${caFile}
    oauth: { clientId: app-cert, certificate: ${certFile}, ${thumb}authority: ${idp.base} }
`);
    const t = await createTokenProvider(u, { logger: silentLogger(), mailroot: tmp.dir }).getToken();
    const v = verifyAccessToken(idp, t, ['https://graph.microsoft.com']);
    assert.ok(v.ok);
    assert.deepEqual(v.ok && v.claims.roles, ['Mail.Send']);
  }
});

test('a wrong secret is a clear, route-broken error naming the fix', async () => {
  const u = upstream(`  - name: bad
    url: smtp+starttls://127.0.0.1:1
    auth: xoauth2
    mailbox: scanner@contoso.com
    ca: ${caFile}
    oauth: { tenant: ${idp.tenantId}, clientId: app-secret, clientSecret: 6f1e2d3c-secret-id, authority: ${idp.base} }
`);
  await assert.rejects(createTokenProvider(u, { logger: silentLogger(), mailroot: tmp.dir }).getToken(), (e: unknown) => {
    assert.ok(e instanceof TokenError);
    assert.equal(e.routeBroken, true);
    assert.match(e.message, /client secret .*wrong.*Create a new client secret/s);
    assert.match(e.message, /AADSTS7000215/);
    return true;
  });
});

test('delegated: device-code login stores the refresh token owner-only; renewal uses it; a revoked grant is a clear error', async () => {
  const u = upstream(`  - name: deleg
    url: smtp+starttls://127.0.0.1:1
    auth: xoauth2
    mailbox: alice@contoso.com
    ca: ${caFile}
    oauth: { mode: delegated, tenant: ${idp.tenantDomain}, clientId: app-public, authority: ${idp.base} }
`);
  const shown: string[] = [];
  const login = loginWithDeviceCode(u, { mailroot: tmp.dir }, (m) => {
    shown.push(m);
    setTimeout(() => idp.approveDevice(idp.lastDeviceCode!.user_code, 'alice@contoso.com'), 300);
  });
  const who = await login;
  assert.equal(who.username, 'alice@contoso.com');
  assert.match(shown[0], /devicelogin.*enter the code [0-9A-F]{8}/);
  const cache = path.join(tmp.dir, 'm365', 'deleg.tokens.json');
  assert.equal(statSync(cache).mode & 0o777, 0o600);
  assert.match(readFileSync(cache, 'utf8'), /RefreshToken/);

  const p = createTokenProvider(u, { logger: silentLogger(), mailroot: tmp.dir });
  const before = idp.issued.refresh_token ?? 0;
  const t = await p.getToken();
  assert.equal(idp.issued.refresh_token, before + 1, 'renewed with the stored refresh token');
  const claims = decodeJwt(t)!.claims;
  assert.equal(claims.aud, 'https://outlook.office.com');
  assert.equal(claims.scp, 'SMTP.Send');
  assert.equal(claims.upn, 'alice@contoso.com');

  idp.revokeUser('alice@contoso.com');
  p.invalidate();
  await assert.rejects(p.getToken(), (e: unknown) => {
    assert.ok(e instanceof TokenError);
    assert.equal(e.routeBroken, true);
    assert.match(e.message, /revoked.*smarthost m365 login --upstream NAME again/s);
    return true;
  });
});

test('delegated upstream nobody signed in to: says to run m365 login', async () => {
  const u = upstream(`  - name: nobody
    url: smtp+starttls://127.0.0.1:1
    auth: xoauth2
    mailbox: bob@contoso.com
    ca: ${caFile}
    oauth: { mode: delegated, tenant: ${idp.tenantDomain}, clientId: app-public, authority: ${idp.base} }
`);
  await assert.rejects(createTokenProvider(u, { logger: silentLogger(), mailroot: tmp.dir }).getToken(), /smarthost m365 login --config FILE --upstream nobody/);
});
