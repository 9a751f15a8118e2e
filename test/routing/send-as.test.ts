// Send As per route (src/routing/send-as.ts) as the listener asks it (createSenderCheck): which
// route's mailbox decides, at MAIL FROM and at end of DATA, and what config check warns about.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseConfigText } from '../../src/config/load.ts';
import { createSenderCheck } from '../../src/inbound/sender-policy.ts';
import { createRouter } from '../../src/routing/index.ts';
import { sendAsFailoverWarnings } from '../../src/routing/send-as.ts';
import { runCli } from '../helpers/cli.ts';

const OAUTH = 'oauth: { tenant: t.onmicrosoft.com, clientId: c, clientSecret: s }';
const UPSTREAMS = `upstreams:
  - { name: contoso, url: 'smtp+starttls://smtp.office365.com', auth: xoauth2, mailbox: scanner@contoso.com, sendAs: [alerts@contoso.com], ${OAUTH} }
  - { name: fabrikam, url: 'graph://fabrikam.onmicrosoft.com/relay@fabrikam.com', oauth: { clientId: c, clientSecret: s } }
  - { name: isp, url: 'smtp+starttls://mail.example.net' }
  - { name: mx, url: 'connector://contoso.com', sendAs: ['*@contoso.com'] }
`;

const reject = (d: ReturnType<ReturnType<typeof createSenderCheck>>) => (d.verdict === 'reject' ? `${d.code} ${d.status} ${d.message}` : undefined);

test('routing: the route each recipient takes decides; at MAIL FROM only when every possible route refuses', () => {
  const config = parseConfigText(`${UPSTREAMS}routes:
  - { name: a, upstreams: [contoso] }
  - { name: b, upstreams: [fabrikam] }
  - { name: r, upstreams: [fabrikam], sender: { mode: rewrite, rewriteTo: relay@fabrikam.com } }
  - { name: ob, upstreams: [contoso], sender: { mode: on-behalf } }
  - { name: c, upstreams: [mx] }
routing:
  rules:
    - { clients: [10.2.0.0/16], route: b }
    - { clients: [10.3.0.0/16], route: r }
    - { clients: [10.4.0.0/16], route: ob }
    - { clients: [10.5.0.0/16], route: c }
    - { recipientDomains: [fabrikam.com], route: b }
  default: a
`, '/tmp/sa.yaml');
  const check = createSenderCheck(config);
  const mail = (client: string, from: string) => check({ clientAddress: client, mailFrom: from, stage: 'mail' });
  const data = (client: string, from: string, recipients: string[], headerFrom = from) => check({ clientAddress: client, mailFrom: from, headerFrom, recipients, stage: 'data' });
  // MAIL FROM: the client picks route b (known at once)
  assert.match(reject(mail('10.2.0.1', 'alerts@contoso.com')) ?? '', /^550 5\.7\.60 Sender <alerts@contoso\.com> refused: on route b, upstream fabrikam \(mailbox relay@fabrikam\.com\) has no Send As on it; fix: .*Add-RecipientPermission alerts@contoso\.com -Trustee relay@fabrikam\.com/);
  // route a's mailbox may send as it; a recipient at fabrikam.com could still send it to b: decided at DATA
  assert.equal(mail('192.0.2.1', 'alerts@contoso.com').verdict, 'accept');
  assert.equal(data('192.0.2.1', 'alerts@contoso.com', ['x@example.org']).verdict, 'accept');
  assert.match(reject(data('192.0.2.1', 'alerts@contoso.com', ['x@example.org', 'y@fabrikam.com'])) ?? '', /on route b \(recipients y@fabrikam\.com; rule 5/);
  // a sender no possible route may use is refused at MAIL FROM, naming the other routes it could take
  assert.match(reject(mail('192.0.2.1', 'nobody@example.org')) ?? '', /on route b \(and on every other route it could take: a\)/);
  // the From: header counts at end of DATA
  assert.match(reject(data('192.0.2.1', 'scanner@contoso.com', ['x@example.org'], 'ceo@contoso.com')) ?? '', /Sender <ceo@contoso\.com> refused: on route a/);
  // rewrite: always fine
  assert.equal(data('10.3.0.1', 'anything@printer.local', ['x@example.org']).verdict, 'accept');
  // on-behalf: the envelope becomes the mailbox; From: needs Send on Behalf
  assert.equal(mail('10.4.0.1', 'boss@contoso.com').verdict, 'accept');
  assert.match(reject(data('10.4.0.1', 'boss@contoso.com', ['x@example.org'])) ?? '', /Send on Behalf.*Set-Mailbox boss@contoso\.com -GrantSendOnBehalfTo scanner@contoso\.com/);
  // a connector route: accepted domains and the connector, not Add-RecipientPermission
  const conn = reject(mail('10.5.0.1', 'x@fabrikam.com')) ?? '';
  assert.match(conn, /connector to contoso\.com.*accepted domain.*do not apply to a connector/);
  assert.doesNotMatch(conn, /fix: grant it/);
  assert.equal(mail('10.5.0.1', 'x@contoso.com').verdict, 'accept');
  // the null sender is not checked
  assert.equal(mail('10.2.0.1', '').verdict, 'none');
});

test('no routing and no senders: the first upstream decides, only when it restricts senders', () => {
  const m365First = createSenderCheck(parseConfigText(UPSTREAMS, '/tmp/d.yaml'));
  assert.match(reject(m365First({ clientAddress: '127.0.0.1', mailFrom: 'someone@gmail.com', stage: 'mail' })) ?? '', /upstream contoso \(mailbox scanner@contoso\.com\) has no Send As on it/);
  assert.equal(m365First({ clientAddress: '127.0.0.1', mailFrom: 'alerts@contoso.com', stage: 'mail' }).verdict, 'accept');
  // a plain smart host first: any sender, as before
  const ispFirst = createSenderCheck(parseConfigText('upstreams:\n  - { name: isp, url: "smtp+starttls://mail.example.net", username: u, password: p }\n', '/tmp/i.yaml'));
  assert.notEqual(ispFirst({ clientAddress: '127.0.0.1', mailFrom: 'someone@gmail.com', headerFrom: 'x@y.z', recipients: ['a@b.c'], stage: 'data' }).verdict, 'reject');
  assert.notEqual(createSenderCheck(parseConfigText('log: { level: info }\n', '/tmp/n.yaml'))({ clientAddress: '127.0.0.1', mailFrom: 'a@b.c', stage: 'mail' }).verdict, 'reject');
});

test('the route is known at MAIL FROM unless a rule before it looks at recipients or From:', () => {
  const router = createRouter(parseConfigText(`${UPSTREAMS}routes:
  - { name: a, upstreams: [contoso] }
  - { name: b, upstreams: [fabrikam] }
  - { name: i, upstreams: [isp] }
routing:
  rules:
    - { users: [erp], route: i }
    - { senderDomains: [contoso.com], fromDomains: [fabrikam.com], route: b }
    - { senderDomains: [contoso.com], route: a }
    - { recipientDomains: [partner.example], route: i }
  default: b
`, '/tmp/p.yaml'));
  assert.deepEqual(router.possibleRoutes({ mailFrom: 'x@contoso.com', user: 'erp' }), ['i']);
  assert.deepEqual(router.possibleRoutes({ mailFrom: 'x@contoso.com' }), ['b', 'a']);
  assert.deepEqual(router.possibleRoutes({ mailFrom: 'x@example.org' }), ['i', 'b']);
});

test('config check warns when a later upstream of a route may not send as what its first may, or rewriteTo is not sendable', async () => {
  const yaml = `${UPSTREAMS}  - { name: contoso2, url: 'smtp+starttls://smtp.office365.com', auth: xoauth2, mailbox: scanner@contoso.com, ${OAUTH} }
routes:
  - { name: failover, upstreams: [contoso, fabrikam] }
  - { name: same, upstreams: [contoso, contoso2, isp] }
  - { name: open-first, upstreams: [isp, fabrikam] }
  - { name: rw, upstreams: [fabrikam], sender: { mode: rewrite, rewriteTo: scanner@contoso.com } }
  - { name: rw-ok, upstreams: [fabrikam], sender: { mode: rewrite, rewriteTo: relay@fabrikam.com } }
routing:
  default: failover
`;
  const warnings = sendAsFailoverWarnings(parseConfigText(yaml, '/tmp/w.yaml'));
  assert.ok(warnings.some((w) => /^route failover: .*fabrikam \(mailbox relay@fabrikam\.com\) may not send as scanner@contoso\.com, alerts@contoso\.com/.test(w)), warnings.join('\n'));
  assert.ok(warnings.some((w) => /^route same: .*contoso2 .*may not send as alerts@contoso\.com,/.test(w)), 'the same mailbox without the Send As grant');
  assert.ok(warnings.some((w) => /^route open-first: its first upstream isp takes any sender, but fabrikam/.test(w)));
  assert.ok(warnings.some((w) => /^route rw rewrites senders to scanner@contoso\.com, but upstream fabrikam/.test(w)));
  assert.ok(!warnings.some((w) => /rw-ok|default route/.test(w)), warnings.join('\n'));
  assert.equal(warnings.length, 4, warnings.join('\n'));
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sh-sendas-'));
  try {
    const file = path.join(dir, 'smarthost.yaml');
    writeFileSync(file, `mailroot: ${dir}/mailroot\n${yaml}`);
    const r = await runCli(['config', 'check', file]);
    assert.match(r.stdout, /warning: route failover: senders are checked against its first upstream contoso before 250/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
