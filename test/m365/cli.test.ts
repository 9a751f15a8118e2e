import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { statSync } from 'node:fs';
import path from 'node:path';
import { startIdentity, type IdentityStandIn } from '../helpers/m365/identity.ts';
import { loopbackCert, tempDir } from '../helpers/m365/pki.ts';

const NODE = path.resolve('node_modules/.bin/node');
const BIN = path.resolve('bin/smarthost.js');
let idp: IdentityStandIn;
let tmp: ReturnType<typeof tempDir>;
let configFile: string;

before(async () => {
  tmp = tempDir();
  const tls = await loopbackCert();
  tmp.write('ca.pem', tls.cert); // referred to relative to the config file, from another working folder
  idp = await startIdentity(tls);
  idp.register({ clientId: 'smtp-app', secret: 'topsecret', roles: { 'https://outlook.office365.com': ['SMTP.SendAsApp'] } });
  idp.register({ clientId: 'public', publicClient: true });
  configFile = tmp.write('smarthost.yaml', `mailroot: ./mailroot
upstreams:
  - name: app
    url: smtp+starttls://smtp.office365.com:587
    auth: xoauth2
    mailbox: scanner@contoso.com
    ca: ca.pem
    oauth: { tenant: ${idp.tenantDomain}, clientId: smtp-app, clientSecret: { env: TEST_M365_SECRET }, authority: ${idp.base} }
  - name: user
    url: smtp+starttls://smtp.office365.com:587
    auth: xoauth2
    mailbox: alice@contoso.com
    ca: ca.pem
    oauth: { mode: delegated, tenant: ${idp.tenantDomain}, clientId: public, authority: ${idp.base} }
`);
});
after(async () => { await idp.close(); tmp.cleanup(); });

function run(args: string[], env: Record<string, string> = {}, onStdout?: (text: string) => void): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    const p = spawn(NODE, [BIN, ...args], { env: { ...process.env, ...env }, cwd: path.dirname(tmp.dir) });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => { out += d; onStdout?.(out); });
    p.stderr.on('data', (d: Buffer) => { err += d; });
    const timer = setTimeout(() => p.kill('SIGKILL'), 30_000);
    p.on('close', (code) => { clearTimeout(timer); resolve({ code: code ?? -1, out, err }); });
  });
}

test('m365 explain: meaning, fix and whether the route is broken; unknown text exits 1', async () => {
  const r = await run(['m365', 'explain', '535', '5.7.139', 'Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.']);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /What it means: SMTP AUTH is turned off/);
  assert.match(r.out, /Route broken:  yes/);
  assert.match((await run(['m365', 'explain', 'AADSTS50173'])).out, /revoked/);
  assert.equal((await run(['m365', 'explain', 'hello'])).code, 1);
});

test('m365 token shows what the token grants, never the token; a missing secret is a config error', async () => {
  const ok = await run(['m365', 'token', '--config', configFile, '--upstream', 'app'], { TEST_M365_SECRET: 'topsecret' });
  assert.equal(ok.code, 0, ok.err);
  assert.match(ok.out, /audience +https:\/\/outlook\.office365\.com/);
  assert.match(ok.out, /application permissions: SMTP\.SendAsApp/);
  assert.doesNotMatch(ok.out + ok.err, /eyJ[\w-]+\.eyJ/);
  const bad = await run(['m365', 'token', '--config', configFile, '--upstream', 'app'], { TEST_M365_SECRET: 'wrong' });
  assert.equal(bad.code, 1);
  assert.match(bad.err, /AADSTS7000215/);
  const missing = await run(['m365', 'token', '--config', configFile, '--upstream', 'app'], { TEST_M365_SECRET: '' });
  assert.equal(missing.code, 2);
  assert.match(missing.err, /TEST_M365_SECRET is not set/);
});

test('m365 login runs the device-code flow and stores the sign-in owner-only; m365 token then works', async () => {
  let approved = false;
  const r = await run(['m365', 'login', '--config', configFile, '--upstream', 'user'], {}, (out) => {
    const code = /enter the code ([0-9A-F]{8})/.exec(out)?.[1];
    if (code && !approved) { approved = true; idp.approveDevice(code, 'alice@contoso.com'); }
  });
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /Signed in as alice@contoso\.com/);
  assert.equal(statSync(path.join(tmp.dir, 'mailroot', 'm365', 'user.tokens.json')).mode & 0o777, 0o600);
  const t = await run(['m365', 'token', '--config', configFile, '--upstream', 'user']);
  assert.equal(t.code, 0, t.err);
  assert.match(t.out, /delegated scopes: SMTP\.Send/);
  assert.match(t.out, /user alice@contoso\.com/);
});
