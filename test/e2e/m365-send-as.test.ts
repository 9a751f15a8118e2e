// Send As checked before 250, per route (issue 15): two tenants, each with a strict stand-in that
// refuses any sender its mailbox may not use. contoso's mailbox (SMTP AUTH) has Send As on
// alerts@contoso.com; fabrikam's (Graph) has not. The relay must refuse alerts@contoso.com itself
// (550 5.7.60, nothing queued) when the message would take fabrikam's route, and accept and deliver
// it on contoso's — instead of a 250 followed by Exchange's refusal, an NDR or badmail.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { startRelay, NODE, CLI, type RelayProcess } from '../helpers/relay.ts';
import { startIdentity, type IdentityStandIn } from '../helpers/m365/identity.ts';
import { startExchangeSmtp, type SmtpStandIn, type Received } from '../helpers/m365/smtp.ts';
import { startGraph, type GraphStandIn } from '../helpers/m365/graph.ts';
import { runCommand, waitUntil as waitFor } from '../helpers/wait.ts';
import { loopbackCert, tempDir } from '../helpers/m365/pki.ts';

let tmp: ReturnType<typeof tempDir>;
let relay: RelayProcess;
let contosoIdp: IdentityStandIn;
let fabrikamIdp: IdentityStandIn;
let exo: SmtpStandIn;
let graph: GraphStandIn;

const run = (cmd: string, args: string[]) => runCommand(cmd, args, 60_000);
const waitUntil = (what: string, check: () => boolean, ms = 30_000) => waitFor(what, check, ms, () => `relay log tail:\n${relay.output().split('\n').slice(-15).join('\n')}`);

const subjectIs = (s: string) => (m: Received) => /^Subject: (.*)$/m.exec(m.raw.toString('latin1'))?.[1]?.trim() === s;
/** Every message file in the spool (incoming, active, deferred, hold) and badmail. */
const spooled = () => ['incoming', 'active', 'deferred', 'hold', 'badmail'].flatMap((d) => {
  const dir = path.join(relay.mailroot, d);
  return existsSync(dir) ? readdirSync(dir).map((f) => `${d}/${f}`) : [];
});

/** Python's smtplib: prints OK, or the SMTP error class with its code and text. */
function smtplib(from: string, to: string[], subject: string): Promise<{ code: number; out: string }> {
  return run('/usr/bin/python3', ['-c', [
    'import smtplib',
    `s = smtplib.SMTP("127.0.0.1", ${relay.port}, timeout=30)`,
    'try:',
    `    s.sendmail(${JSON.stringify(from)}, ${JSON.stringify(to)}, ${JSON.stringify(`From: ${from}\r\nTo: ${to.join(', ')}\r\nSubject: ${subject}\r\n\r\nbody\r\n`)})`,
    '    print("OK")',
    'except smtplib.SMTPException as e:',
    '    print(type(e).__name__, getattr(e, "smtp_code", ""), getattr(e, "smtp_error", b"").decode() if hasattr(e, "smtp_error") else e)',
    's.quit()',
  ].join('\n')]);
}

before(async () => {
  tmp = tempDir('sh-e2e-sendas-');
  const tls = await loopbackCert();
  const caFile = tmp.write('ca.pem', tls.cert);
  contosoIdp = await startIdentity(tls, { tenantDomain: 'contoso.onmicrosoft.com' });
  fabrikamIdp = await startIdentity(tls, { tenantDomain: 'fabrikam.onmicrosoft.com' });
  exo = await startExchangeSmtp(tls, contosoIdp);
  graph = await startGraph(fabrikamIdp);
  contosoIdp.register({ clientId: 'contoso-smtp', secret: 'c-secret', roles: { 'https://outlook.office365.com': ['SMTP.SendAsApp'] } });
  fabrikamIdp.register({ clientId: 'fabrikam-graph', secret: 'f-secret', roles: { 'https://graph.microsoft.com': ['Mail.Send'] } });
  exo.fullAccess.set('contoso-smtp', ['scanner@contoso.com']);
  exo.sendAs.set('scanner@contoso.com', ['alerts@contoso.com']);
  graph.mailboxes.set('relay@fabrikam.com', []);
  relay = await startRelay([
    'upstreams:',
    '  - name: contoso-smtp',
    `    url: smtp+starttls://127.0.0.1:${exo.port}`,
    '    auth: xoauth2',
    '    mailbox: scanner@contoso.com',
    '    sendAs: [alerts@contoso.com]',
    `    ca: ${caFile}`,
    `    oauth: { tenant: ${contosoIdp.tenantDomain}, clientId: contoso-smtp, clientSecret: c-secret, authority: ${contosoIdp.base} }`,
    '  - name: fabrikam-graph',
    `    url: graph://${fabrikamIdp.tenantDomain}/relay@fabrikam.com`,
    `    ca: ${caFile}`,
    `    oauth: { clientId: fabrikam-graph, clientSecret: f-secret, authority: ${fabrikamIdp.base} }`,
    `    graph: { base: ${graph.base} }`,
    'routes:',
    '  - { name: contoso, upstreams: [contoso-smtp] }',
    '  - { name: fabrikam, upstreams: [fabrikam-graph] }',
    'routing:',
    '  rules:',
    '    - { clients: [127.0.0.2], route: fabrikam }',
    '    - { recipientDomains: [fabrikam.com], route: fabrikam }',
    '  default: contoso',
    'delivery: { retry: [1s], scanInterval: 200ms }',
  ].join('\n'));
});

after(async () => {
  await relay?.stop();
  if (relay) rmSync(relay.dir, { recursive: true, force: true });
  await Promise.all([exo?.close(), graph?.close(), contosoIdp?.close(), fabrikamIdp?.close()]);
  tmp?.cleanup();
});

test('a sender the route\'s mailbox may not send as is refused at MAIL FROM (550 5.7.60, route and mailbox named), nothing queued; on the other route it is accepted and delivered', async () => {
  // the client address picks fabrikam's route: known at MAIL FROM
  const refused = await run('swaks', ['--server', `127.0.0.1:${relay.port}`, '--local-interface', '127.0.0.2', '--from', 'alerts@contoso.com', '--to', 'ops@example.org', '--h-Subject', 'wrong route', '--timeout', '20']);
  assert.notEqual(refused.code, 0, refused.out);
  assert.match(refused.out, /-> MAIL FROM:<alerts@contoso\.com>\n<\*\* 550 5\.7\.60 Sender <alerts@contoso\.com> refused: on route fabrikam, upstream fabrikam-graph \(mailbox relay@fabrikam\.com\) has no Send As on it; fix: grant it \(Add-RecipientPermission alerts@contoso\.com -Trustee relay@fabrikam\.com -AccessRights SendAs\)/);
  assert.deepEqual(spooled(), [], 'nothing queued');
  // the same sender from another client takes contoso's route, whose mailbox has Send As on it
  const ok = await smtplib('alerts@contoso.com', ['ops@example.org'], 'right route');
  assert.match(ok.out, /^OK$/m, ok.out);
  await waitUntil('delivery at contoso', () => exo.received.some(subjectIs('right route')));
  const got = exo.received.find(subjectIs('right route'))!;
  assert.deepEqual([got.user, got.mailFrom, got.from], ['scanner@contoso.com', 'alerts@contoso.com', 'alerts@contoso.com']);
  assert.equal(graph.sent.length, 0, 'fabrikam\'s Graph never saw a message');
  assert.deepEqual(exo.refusedSenders, []);
});

test('a split message of which one part\'s route cannot send as the sender is refused whole at end of DATA, with the reason', async () => {
  const r = await smtplib('alerts@contoso.com', ['ops@example.org', 'buyer@fabrikam.com'], 'split, half sendable');
  assert.match(r.out, /SMTPDataError 550 5\.7\.60 Sender <alerts@contoso\.com> refused: on route fabrikam \(recipients buyer@fabrikam\.com; rule 2 \(recipient domain fabrikam\.com\)\), upstream fabrikam-graph \(mailbox relay@fabrikam\.com\) has no Send As on it/, r.out);
  assert.deepEqual(spooled(), [], 'no part was queued');
  assert.ok(!exo.received.some(subjectIs('split, half sendable')), 'not even the sendable part went out');
  // the From: header counts too: an envelope the route may use, a From: it may not
  const header = await run('swaks', ['--server', `127.0.0.1:${relay.port}`, '--from', 'scanner@contoso.com', '--to', 'ops@example.org', '--h-From', 'ceo@contoso.com', '--h-Subject', 'bad header', '--timeout', '20']);
  assert.match(header.out, /<\*\* 550 5\.7\.60 Sender <ceo@contoso\.com> refused: on route contoso \(recipients ops@example\.org; no rule matched: routing\.default \(contoso\)\), upstream contoso-smtp \(mailbox scanner@contoso\.com\) has no Send As/);
  assert.deepEqual(spooled(), []);
});

test('smarthost route test says whether the sender passes each route\'s send-as check', async () => {
  const bad = await run(NODE, [CLI, 'route', 'test', '--config', relay.configFile, '--from', 'alerts@contoso.com', '--to', 'ops@example.org,buyer@fabrikam.com']);
  assert.equal(bad.code, 0, bad.out);
  assert.match(bad.out, /route contoso: [^\n]*\n(?: {2}[^\n]*\n)*? {2}send-as: {4}ok \(mailbox scanner@contoso\.com of upstream contoso-smtp may send as it\)/);
  assert.match(bad.out, /route fabrikam: [^\n]*\n(?: {2}[^\n]*\n)*? {2}send-as: {4}refused before 250 \(550 5\.7\.60\): alerts@contoso\.com: upstream fabrikam-graph \(mailbox relay@fabrikam\.com\) has no Send As on it/);
  assert.match(bad.out, /the relay would refuse this message before 250: 550 5\.7\.60 Sender <alerts@contoso\.com> refused: on route fabrikam/);
  const good = await run(NODE, [CLI, 'route', 'test', '--config', relay.configFile, '--from', 'alerts@contoso.com', '--to', 'ops@example.org']);
  assert.match(good.out, /send-as: {4}ok/);
  assert.doesNotMatch(good.out, /refused/);
  assert.match(good.out, /the relay would accept this sender/);
});
