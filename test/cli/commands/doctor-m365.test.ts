// smarthost doctor for the Microsoft 365 OAuth2 upstreams, against the loopback stand-ins of
// Entra ID's token endpoint and Exchange Online's SMTP (test/helpers/m365/): a graph:// upstream is
// checked by the token the relay would get (it must grant Mail.Send), an XOAUTH2 upstream by a real
// EHLO + AUTH XOAUTH2 with that token. Nothing is sent in either case.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startIdentity, type IdentityStandIn } from '../../helpers/m365/identity.ts';
import { startExchangeSmtp, type SmtpStandIn } from '../../helpers/m365/smtp.ts';
import { loopbackCert, tempDir } from '../../helpers/m365/pki.ts';
import { runCli } from '../../helpers/cli.ts';

const MAILBOX = 'scanner@contoso.com';
let tmp: ReturnType<typeof tempDir>;
let idp: IdentityStandIn;
let exo: SmtpStandIn;
let caFile: string;

before(async () => {
  tmp = tempDir('sh-doctor-m365-');
  const tls = await loopbackCert();
  caFile = tmp.write('ca.pem', tls.cert);
  idp = await startIdentity(tls);
  exo = await startExchangeSmtp(tls, idp);
  idp.register({ clientId: 'graph-app', secret: 'graph-secret', roles: { 'https://graph.microsoft.com': ['Mail.Send'] } });
  idp.register({ clientId: 'read-only-app', secret: 'ro-secret', roles: { 'https://graph.microsoft.com': ['Mail.ReadBasic'] } });
  idp.register({ clientId: 'smtp-app', secret: 'smtp-secret', roles: { 'https://outlook.office365.com': ['SMTP.SendAsApp'] } });
  exo.fullAccess.set('smtp-app', [MAILBOX]);
});

after(async () => {
  await exo.close();
  await idp.close();
  tmp.cleanup();
});

interface Item { area: string; subject: string; state: string; detail: string }

function config(name: string, upstream: string[]): string {
  return tmp.write(name, [
    `mailroot: ${tmp.dir}/mailroot-${name}`,
    'hostname: relay.contoso.test',
    'upstreams:',
    ...upstream.map((l) => `    ${l}`).map((l, i) => (i === 0 ? `  - ${l.trim()}` : l)),
    '',
  ].join('\n'));
}

async function doctor(file: string): Promise<{ code: number | null; items: Item[]; out: string }> {
  const r = await runCli(['doctor', '--config', file, '--no-clock', '--timeout', '5000', '--json']);
  return { code: r.code, items: (JSON.parse(r.stdout) as { items: Item[] }).items, out: r.stdout + r.stderr };
}

const graph = (name: string, clientId: string, secret: string) => [
  `name: ${name}`,
  `url: graph://${idp.tenantDomain}/${MAILBOX}`,
  `ca: ${caFile}`,
  `oauth: { clientId: ${clientId}, clientSecret: ${secret}, authority: ${idp.base} }`,
];

test('graph:// upstream: a token granting Mail.Send is ok; one without it is a problem that names the fix', { timeout: 60_000 }, async () => {
  const good = await doctor(config('graph-good.yaml', graph('graph', 'graph-app', 'graph-secret')));
  const up = good.items.find((i) => i.area === 'upstream')!;
  assert.equal(up.state, 'ok', good.out);
  assert.match(up.detail, /token obtained with Mail\.Send \(application\) for sending as scanner@contoso\.com \(nothing was sent\)/);

  const readOnly = await doctor(config('graph-ro.yaml', graph('graph', 'read-only-app', 'ro-secret')));
  const ro = readOnly.items.find((i) => i.area === 'upstream')!;
  assert.equal(readOnly.code, 1, readOnly.out);
  assert.equal(ro.state, 'problem');
  assert.match(ro.detail, /does not grant Mail\.Send \(application permissions: Mail\.ReadBasic\): add the Microsoft Graph application permission Mail\.Send .* admin consent/);

  const wrong = await doctor(config('graph-wrong.yaml', graph('graph', 'graph-app', 'not-the-secret')));
  const w = wrong.items.find((i) => i.area === 'upstream')!;
  assert.equal(w.state, 'problem');
  assert.match(w.detail, /^no token from Entra ID: /);
});

test('XOAUTH2 upstream: doctor gets a token and logs in to Exchange with it (AUTH XOAUTH2), sending nothing', { timeout: 60_000 }, async () => {
  const before = exo.auths.length;
  const r = await doctor(config('xoauth2.yaml', [
    'name: o365',
    `url: smtp+starttls://127.0.0.1:${exo.port}`,
    'auth: xoauth2',
    `mailbox: ${MAILBOX}`,
    `ca: ${caFile}`,
    `oauth: { tenant: ${idp.tenantDomain}, clientId: smtp-app, clientSecret: smtp-secret, authority: ${idp.base} }`,
  ]));
  const up = r.items.find((i) => i.area === 'upstream')!;
  assert.equal(up.state, 'ok', r.out);
  assert.match(up.detail, /answered EHLO; authenticated as scanner@contoso\.com \(nothing was sent\)/);
  assert.deepEqual(exo.auths.slice(before), ['235'], 'Exchange accepted the token');
  assert.equal(exo.received.length, 0);
});
