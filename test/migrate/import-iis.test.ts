// smarthost import-iis on the fixtures of test/fixtures/iis/: the produced config passes
// `config check`, and run by the real relay it lets the same clients relay as the metabase did
// (real swaks clients bound to 127.0.0.2 / .3 / .4 → `smarthost serve` → a loopback upstream).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { runCli } from '../helpers/cli.ts';
import { startRelay, type RelayProcess } from '../helpers/relay.ts';
import { startUpstream, type Upstream } from '../helpers/upstream.ts';
import { FIXTURES } from '../fixtures/iis/build.ts';
import { importIis } from '../../src/migrate/iis.ts';
import { element, encodeIpSecList, hex, metabase } from '../helpers/iis-metabase.ts';

const DIR = path.resolve(import.meta.dirname, '../fixtures/iis');
const fixture = (name: string) => path.join(DIR, name);
const tmp = mkdtempSync(path.join(tmpdir(), 'sh-iis-'));
const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
  rmSync(tmp, { recursive: true, force: true });
});

function swaks(port: number, from: string, to: string, localAddress: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile('swaks', ['--server', `127.0.0.1:${port}`, '--local-interface', localAddress, '--from', from, '--to', to, '--header', 'Subject: import-iis', '--timeout', '20'], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, out: `${stdout}${stderr}` });
    });
  });
}

/** Imports a fixture with the CLI, checks the config, and returns it parsed. */
async function imported(name: string, args: string[] = []): Promise<{ file: string; config: Record<string, any>; report: string; code: number | null }> {
  const out = path.join(tmp, `${name}.yaml`);
  const r = await runCli(['import-iis', fixture(name), '--out', out, ...args]);
  assert.equal(r.stdout, '', 'with --out the config goes to the file only');
  const check = await runCli(['config', 'check', out]);
  assert.equal(check.code, 0, `config check: ${check.stderr}`);
  assert.match(check.stdout, /: OK \(/);
  return { file: out, config: YAML.parse(readFileSync(out, 'utf8')), report: r.stderr, code: r.code };
}

/** Runs the imported config with its listener, mailroot and smart host swapped for test ones. */
async function serve(config: Record<string, any>, upstream: Upstream, extra: { ca?: string; env?: NodeJS.ProcessEnv } = {}): Promise<RelayProcess> {
  const c = structuredClone(config);
  delete c.listen; // startRelay listens on 127.0.0.1:<free port> with tls: none and sets mailroot
  delete c.mailroot;
  const url = new URL(c.upstreams[0].url);
  c.upstreams[0].url = `${url.protocol}//127.0.0.1:${upstream.port}`;
  if (extra.ca) {
    const caFile = path.join(tmp, `ca-${upstream.port}.pem`);
    writeFileSync(caFile, extra.ca);
    c.upstreams[0].ca = caFile;
  }
  const r = await startRelay(YAML.stringify(c), { env: extra.env });
  cleanups.push(async () => {
    await r.stop();
    rmSync(r.dir, { recursive: true, force: true });
  });
  return r;
}

test('the fixture files are what test/fixtures/iis/build.ts writes', () => {
  for (const [name, text] of Object.entries(FIXTURES)) assert.equal(readFileSync(fixture(name), 'utf8'), text, `${name} is stale: run node test/fixtures/iis/build.ts`);
});

test('seed setup (anonymous, relay list, smtp.office365.com:587 + TLS + mailbox, masquerade): config and report', async () => {
  const { config, report, code } = await imported('seed.xml');
  assert.equal(code, 1, 'the password needs the admin: exit 1');
  assert.deepEqual(config.listen, [{ address: '192.168.1.10', port: 587 }]);
  assert.equal(config.hostname, 'relay.contoso.local');
  assert.deepEqual(config.access, {
    connection: { mode: 'only', list: ['127.0.0.2', '127.0.0.3', '192.168.1.0/24'] },
    relay: { mode: 'only', list: ['127.0.0.2', '192.168.1.50', '192.168.1.51'] },
    relayForAuthenticated: false,
  });
  assert.equal(config.auth.enabled, false);
  assert.deepEqual(config.upstreams[0], {
    name: 'office365', url: 'smtp+starttls://smtp.office365.com:587', username: 'scanner@contoso.com',
    password: { env: 'SMARTHOST_OFFICE365_PASSWORD' }, timeout: 600, maxMessagesPerConnection: 20,
  });
  assert.equal(config.delivery.masqueradeDomain, 'contoso.com');
  assert.deepEqual(config.delivery.retry, ['15m', '30m', '60m', '240m']);
  assert.equal(config.delivery.delayNotification, '12h');
  assert.equal(config.delivery.expiration, '2d');
  assert.deepEqual(config.ndr, { to: 'both', adminCopy: 'it@contoso.com' });
  assert.equal(config.limits.maxMessageSize, '2MB');
  // Every property has a verdict; the password is the one thing the admin must do.
  assert.match(report, /^ADMIN +RoutePassword = \(encrypted\) +\(line \d+\) +→ upstreams\[0\]\.password/m);
  assert.doesNotMatch(report, /496344627000/, 'the encrypted password blob is not printed');
  assert.equal([...report.matchAll(/^ADMIN /gm)].length, 1);
  assert.match(report, /^MAPPED +RelayIpList = \(3 granted\)/m);
  assert.match(report, /^MAPPED +MaxBatchedMessages = 20 +\(inherited from \/LM\/SmtpSvc, line \d+\)/m);
  assert.match(report, /^NO EQUIVALENT +MaxSessionSize/m);
  assert.match(report, /^NOT NEEDED +SmtpLocalNDRExpireMinutes/m);
  assert.match(report, /0 not recognised/);
});

test('seed setup run by the relay: a listed device relays through STARTTLS + AUTH, masqueraded; others are refused', async () => {
  const { config } = await imported('seed.xml');
  const upstream = await startUpstream({ tls: true, auth: { user: 'scanner@contoso.com', pass: 'Mailbox-Pa55' } });
  cleanups.push(() => upstream.stop());
  const relay = await serve(config, upstream, { ca: upstream.ca, env: { SMARTHOST_OFFICE365_PASSWORD: 'Mailbox-Pa55' } });

  const listed = await swaks(relay.port, 'scan@printer.local', 'someone@example.org', '127.0.0.2');
  assert.equal(listed.code, 0, listed.out);
  const [msg] = await upstream.waitFor(1);
  assert.equal(msg.user, 'scanner@contoso.com');
  assert.equal(msg.secure, true);
  assert.deepEqual(msg.recipients, ['someone@example.org']);
  assert.equal(msg.mailFrom, 'scan@contoso.com', 'masquerade domain applied');

  // 127.0.0.3 may connect (connection list) but is not on the relay list.
  const unlisted = await swaks(relay.port, 'scan@printer.local', 'someone@example.org', '127.0.0.3');
  assert.notEqual(unlisted.code, 0);
  assert.match(unlisted.out, /<\*\* 5\d\d 5\.7\.1 Relay access denied/);
  // 127.0.0.4 is on neither list: refused at connect, as IIS's connection control did.
  const stranger = await swaks(relay.port, 'scan@printer.local', 'someone@example.org', '127.0.0.4');
  assert.notEqual(stranger.code, 0);
  assert.match(stranger.out, /554 5\.7\.1/);
  assert.equal(upstream.messages.length, 1);
});

test('deny lists ("all except") with subnet masks: the same clients relay as under IIS', async () => {
  const { config, report, code } = await imported('deny-list.xml');
  assert.equal(code, 1);
  assert.deepEqual(config.access.connection, { mode: 'all-except', list: ['10.1.2.0/24', '172.16.0.0/12', '127.0.0.4'] });
  assert.deepEqual(config.access.relay, { mode: 'all-except', list: ['127.0.0.3', '10.20.0.0/16'] });
  assert.equal(config.access.relayForAuthenticated, true, 'RelayForAuth 4294967295 (-1) = checked');
  assert.equal(config.upstreams[0].url, 'smtp://10.0.0.25:25', '[10.0.0.25] literal, no TLS');
  assert.match(report, /^ADMIN +RelayIpList = \(2 denied\).*\n.*every other client that can connect may relay/m);
  assert.match(report, /SmartHostType = 1 .*\n.*smarthost always uses the smart host/);

  const upstream = await startUpstream();
  cleanups.push(() => upstream.stop());
  const relay = await serve(config, upstream);
  const allowed = await swaks(relay.port, 'app@branch.local', 'x@example.org', '127.0.0.2');
  assert.equal(allowed.code, 0, allowed.out);
  await upstream.waitFor(1);
  const denied = await swaks(relay.port, 'app@branch.local', 'x@example.org', '127.0.0.3');
  assert.match(denied.out, /<\*\* 5\d\d 5\.7\.1 Relay access denied/);
  const blocked = await swaks(relay.port, 'app@branch.local', 'x@example.org', '127.0.0.4');
  assert.match(blocked.out, /554 5\.7\.1/);
  assert.equal(upstream.messages.length, 1);
});

test('two virtual servers: without --server a clear error lists them; --server picks one with inherited defaults', async () => {
  const none = await runCli(['import-iis', fixture('two-servers.xml')]);
  assert.equal(none.code, 2);
  assert.equal(none.stdout, '');
  assert.match(none.stderr, /two-servers\.xml holds 2 SMTP virtual servers; choose one with --server N/);
  assert.match(none.stderr, /1 {2}\[Scanners\] {2}\/LM\/SmtpSvc\/1 {2}bindings 10\.0\.0\.5:25:/);
  assert.match(none.stderr, /2 {2}\[Legacy app\] {2}\/LM\/SmtpSvc\/2 {2}bindings 10\.0\.0\.6:2525:/);
  const wrong = await runCli(['import-iis', fixture('two-servers.xml'), '--server', '7']);
  assert.equal(wrong.code, 2);
  assert.match(wrong.stderr, /no SMTP virtual server 7; the file has:/);

  const one = await imported('two-servers.xml', ['--server', '1']);
  assert.equal(one.code, 0, one.report);
  assert.deepEqual(one.config.access.relay, { mode: 'only', list: ['10.0.0.0/24'] });
  assert.equal(one.config.upstreams[0].url, 'smtp://mail.example.net:25', 'smart host inherited from /LM/SmtpSvc');
  assert.match(one.report, /SmartHost = mail\.example\.net +\(inherited from \/LM\/SmtpSvc, line \d+\)/);

  // Server 2: an empty RelayIpList is "all except nothing" in IIS, an open relay: not copied.
  const reportFile = path.join(tmp, 'two-2.txt');
  const two = await imported('two-servers.xml', ['--server', '2', '--report', reportFile]);
  assert.equal(two.report, '', '--report takes the report off standard error');
  const report = readFileSync(reportFile, 'utf8');
  assert.equal(two.code, 1);
  assert.deepEqual(two.config.listen, [{ address: '10.0.0.6', port: 2525 }]);
  assert.deepEqual(two.config.access.relay, { mode: 'only', list: [] });
  assert.equal(two.config.access.relayForAuthenticated, true);
  assert.deepEqual(two.config.auth, { enabled: true, usersFile: 'users.yaml' });
  assert.equal(two.config.limits.maxMessageSize, '10MB');
  assert.match(report, /^ADMIN +RelayIpList = \(empty\).*\n.*OPEN RELAY\. smarthost does not copy that/m);
  assert.match(report, /^ADMIN +AuthFlags = AuthAnonymous \| AuthBasic .*\n.*anonymous \+ Basic: IIS checked Windows accounts/m);
});

test('damaged or odd files: errors name the file, the line and the property', async () => {
  const bad = await runCli(['import-iis', fixture('bad-hex.xml')]);
  assert.equal(bad.code, 2);
  assert.equal(bad.stdout, '', 'nothing is written when the file cannot be used');
  assert.match(bad.stderr, /bad-hex\.xml:\d+: RelayIpList of \/LM\/SmtpSvc\/1: cannot decode the IP list: "Z" at hex digit 9 is not a hex digit/);
  const cut = await runCli(['import-iis', fixture('truncated-list.xml')]);
  assert.equal(cut.code, 2);
  assert.match(cut.stderr, /truncated-list\.xml:\d+: RelayIpList of \/LM\/SmtpSvc\/1: cannot decode the IP list: .*beyond the end of the value/);
  const none = await runCli(['import-iis', fixture('no-server.xml')]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /no-server\.xml: this metabase has no SMTP virtual server/);
  const notXml = path.join(tmp, 'broken.xml');
  writeFileSync(notXml, '<?xml version ="1.0"?>\n<configuration>\n<IIsSmtpServer Location ="/LM/SmtpSvc/1"\n ServerBindings=":25:"\n</configuration>\n');
  const broken = await runCli(['import-iis', notXml]);
  assert.equal(broken.code, 2);
  assert.match(broken.stderr, /broken\.xml:\d+:\d+: not a well-formed XML file/);
  const missing = await runCli(['import-iis', path.join(tmp, 'nope.xml')]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /cannot read .*nope\.xml/);
  const badNumber = metabase([element('IIsSmtpServer', '/LM/SmtpSvc/1', { ServerBindings: ':25:', MaxRecipients: 'lots' })]);
  assert.throws(() => importIis(badNumber, 'x.xml'), (e: Error) => /^x\.xml:\d+: MaxRecipients of \/LM\/SmtpSvc\/1: expected a number, got "lots"$/.test(String(e)));
  const badFlag = metabase([element('IIsSmtpServer', '/LM/SmtpSvc/1', { AuthFlags: 'AuthAnonymous | AuthKerberos' })]);
  assert.throws(() => importIis(badFlag, 'x.xml'), /AuthFlags .*"AuthKerberos" is not a flag/);
  const badHost = metabase([element('IIsSmtpServer', '/LM/SmtpSvc/1', { SmartHost: 'smtp.office365.com; backup.example', SmartHostType: '2' })]);
  assert.throws(() => importIis(badHost, 'x.xml'), /SmartHost of \/LM\/SmtpSvc\/1: "smtp\.office365\.com; backup\.example" is not a host name/);
  const badRetry = metabase([element('IIsSmtpServer', '/LM/SmtpSvc/1', { SmtpRemoteProgressiveRetry: '15,soon' })]);
  assert.throws(() => importIis(badRetry, 'x.xml'), /SmtpRemoteProgressiveRetry .*expected minutes separated by commas/);
  const badBinding = metabase([element('IIsSmtpServer', '/LM/SmtpSvc/1', { ServerBindings: '10.0.0.1:99999:' })]);
  assert.throws(() => importIis(badBinding, 'x.xml'), /ServerBindings .*port 99999/);
});

test('conservative mappings: no relay list, IIS\'s 0.0.0.0 stand-in, domain-name denies, no smart host, NTLM', () => {
  const ONE = '255.255.255.255';
  const base = { ServerBindings: ':25:' };
  // No RelayIpList at all: IIS's default "only the list below", nothing listed.
  let r = importIis(metabase([element('IIsSmtpServer', '/LM/SmtpSvc/1', { ...base, SmartHost: 'relay.example.net', SmartHostType: '2' })]), 'x.xml');
  let cfg = YAML.parse(r.yaml);
  assert.deepEqual(cfg.access.relay, { mode: 'only', list: [] });
  assert.deepEqual(cfg.access.connection, { mode: 'all-except', list: [] });
  assert.equal(r.needsAdmin, false, r.items.map((i) => `${i.verdict} ${i.property}`).join('\n'));
  // "Only the list below" with nothing listed is written by IIS as 0.0.0.0/32: no entry for it.
  r = importIis(metabase([element('IIsSmtpServer', '/LM/SmtpSvc/1', { ...base, RelayIpList: hex(encodeIpSecList({ grant: [['0.0.0.0', ONE]] })) })]), 'x.xml');
  assert.deepEqual(YAML.parse(r.yaml).access.relay, { mode: 'only', list: [] });
  // Denied by DNS name: smarthost cannot enforce it, so the admin is told those clients get in.
  r = importIis(metabase([element('IIsSmtpServer', '/LM/SmtpSvc/1', { ...base, SmartHost: 'h.example', IPSecurity: hex(encodeIpSecList({ deny: [['10.0.0.9', ONE]], denyNames: ['bad.example.com'] })) })]), 'x.xml');
  cfg = YAML.parse(r.yaml);
  assert.deepEqual(cfg.access.connection, { mode: 'all-except', list: ['10.0.0.9'] });
  assert.ok(r.items.some((i) => i.verdict === 'admin' && /THESE CLIENTS CAN CONNECT/.test(i.note) && /bad\.example\.com/.test(i.note)));
  // No smart host: IIS delivered by MX itself; smarthost needs an upstream.
  r = importIis(metabase([element('IIsSmtpServer', '/LM/SmtpSvc/1', base)]), 'x.xml');
  assert.deepEqual(YAML.parse(r.yaml).upstreams, []);
  assert.ok(r.items.some((i) => i.verdict === 'admin' && i.property === 'SmartHost' && /MX/.test(i.note)));
  // NTLM to the smart host, and an unknown property.
  r = importIis(metabase([element('IIsSmtpServer', '/LM/SmtpSvc/1', { ...base, SmartHost: 'h.example', SmartHostType: '2', RouteAction: '128', FrobnicateLevel: '3' })]), 'x.xml');
  assert.ok(r.items.some((i) => i.verdict === 'admin' && i.property === 'RouteAction' && /cannot do NTLM/.test(i.note)));
  assert.ok(r.items.some((i) => i.verdict === 'unknown' && i.property === 'FrobnicateLevel'));
  // A property written as <Custom Name=… Value=…> inside the element counts like an attribute.
  const custom = element('IIsSmtpServer', '/LM/SmtpSvc/1', { ...base, SmartHost: 'h.example' })
    .replace('\t>\n', `\t>\n<Custom Name="RelayIpList" ID="36970" Value="${hex(encodeIpSecList({ grant: [['10.9.8.7', ONE]] }))}" Type="BINARY" UserType="IIS_MD_UT_FILE" Attributes="INHERIT"/>\n`);
  assert.deepEqual(YAML.parse(importIis(metabase([custom]), 'x.xml').yaml).access.relay, { mode: 'only', list: ['10.9.8.7'] });
  // Domains (IIS Manager → Domains) are listed; one routed to a smart host of its own needs the admin.
  r = importIis(metabase([
    element('IIsSmtpServer', '/LM/SmtpSvc/1', { ...base, SmartHost: 'h.example', SmartHostType: '2' }),
    element('IIsSmtpDomain', '/LM/SmtpSvc/1/Domain/relay.contoso.local', { RouteAction: '16' }),
    element('IIsSmtpDomain', '/LM/SmtpSvc/1/Domain/partner.example', { RouteAction: '2', RouteActionString: 'mx.partner.example' }),
    element('IIsSmtpDomain', '/LM/SmtpSvc/2/Domain/other.example', { RouteAction: '2' }),
  ]), 'x.xml');
  assert.deepEqual(r.items.filter((i) => i.property.startsWith('Domain ')).map((i) => `${i.verdict} ${i.property}`).sort(), ['admin Domain partner.example', 'no-equivalent Domain relay.contoso.local']);
  r = importIis(metabase([element('IIsSmtpServer', '/LM/SmtpSvc/1', { ...base, SmartHost: 'h.example', SmartHostType: '2', RouteAction: '128', FrobnicateLevel: '3' })]), 'x.xml');
  // Every property of the element appears in the report exactly once.
  const props = ['ServerBindings', 'SmartHost', 'SmartHostType', 'RouteAction', 'FrobnicateLevel'];
  for (const p of props) assert.equal(r.items.filter((i) => i.property === p).length, 1, p);
});
