// One relay, three Microsoft 365 tenants (issue 15, "what it must show"): each tenant has its own
// identity platform stand-in and app registrations, its own strict Exchange Online submission
// (XOAUTH2 only; refuses <> and any From its mailbox may not use) and its own Graph. Routing sends
// each sender domain to its tenant, an unmatched sender to the default route, splits a message whose
// recipients need two routes, and every tenant's NDRs go back through that tenant as its mailbox.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { simpleParser } from 'mailparser';
import { startRelay, NODE, CLI, type RelayProcess } from '../helpers/relay.ts';
import { startIdentity, type IdentityStandIn } from '../helpers/m365/identity.ts';
import { startExchangeSmtp, type SmtpStandIn, type Received } from '../helpers/m365/smtp.ts';
import { startGraph, type GraphStandIn } from '../helpers/m365/graph.ts';
import { runCommand, waitUntil as waitFor } from '../helpers/wait.ts';
import { loopbackCert, tempDir } from '../helpers/m365/pki.ts';

interface Tenant { name: string; domain: string; mailbox: string; idp: IdentityStandIn; exo: SmtpStandIn; graph: GraphStandIn }

const TENANTS = [
  { name: 'contoso', domain: 'contoso.com', mailbox: 'scanner@contoso.com' },
  { name: 'fabrikam', domain: 'fabrikam.com', mailbox: 'relay@fabrikam.com' },
  { name: 'northwind', domain: 'northwind.com', mailbox: 'relay@northwind.com' },
];

let tmp: ReturnType<typeof tempDir>;
let caFile: string;
const tenants: Tenant[] = [];
let relay: RelayProcess;

const run = (cmd: string, args: string[]) => runCommand(cmd, args, 60_000);
const waitUntil = (what: string, check: () => boolean, ms = 30_000) => waitFor(what, check, ms, () => `relay log tail:\n${relay.output().split('\n').slice(-15).join('\n')}`);

const swaks = (from: string, to: string, subject: string) => run('swaks', ['--server', `127.0.0.1:${relay.port}`, '--from', from, '--to', to, '--h-Subject', subject, '--body', `body of ${subject}`]);
const subjectIs = (s: string) => (m: Received) => /^Subject: (.*)$/m.exec(m.raw.toString('latin1'))?.[1]?.trim() === s;
const tenant = (name: string) => tenants.find((t) => t.name === name)!;
const everywhere = (s: string) => tenants.filter((t) => t.exo.received.some(subjectIs(s)) || t.graph.sent.some((m) => m.subject === s)).map((t) => t.name);

before(async () => {
  tmp = tempDir('sh-e2e-tenants-');
  const tls = await loopbackCert();
  caFile = tmp.write('ca.pem', tls.cert);
  for (const t of TENANTS) {
    const idp = await startIdentity(tls, { tenantDomain: `${t.name}.onmicrosoft.com` });
    const exo = await startExchangeSmtp(tls, idp);
    const graph = await startGraph(idp);
    idp.register({ clientId: `${t.name}-smtp`, secret: `${t.name}-smtp-secret`, roles: { 'https://outlook.office365.com': ['SMTP.SendAsApp'] } });
    idp.register({ clientId: `${t.name}-graph`, secret: `${t.name}-graph-secret`, roles: { 'https://graph.microsoft.com': ['Mail.Send'] } });
    exo.fullAccess.set(`${t.name}-smtp`, [t.mailbox]);
    graph.mailboxes.set(t.mailbox, []);
    tenants.push({ ...t, idp, exo, graph });
  }
  // northwind's mailbox may also send as its alerts address (Send As), on both routes
  tenant('northwind').exo.sendAs.set('relay@northwind.com', ['alerts@northwind.com']);
  tenant('northwind').graph.mailboxes.set('relay@northwind.com', ['alerts@northwind.com']);
  const upstreams = tenants.flatMap((t) => [
    `  - name: ${t.name}-smtp`,
    `    url: smtp+starttls://127.0.0.1:${t.exo.port}`,
    '    auth: xoauth2',
    `    mailbox: ${t.mailbox}`,
    ...(t.name === 'northwind' ? ['    sendAs: [alerts@northwind.com]'] : []),
    `    ca: ${caFile}`,
    `    oauth: { tenant: ${t.idp.tenantDomain}, clientId: ${t.name}-smtp, clientSecret: ${t.name}-smtp-secret, authority: ${t.idp.base} }`,
    `  - name: ${t.name}-graph`,
    `    url: graph://${t.idp.tenantDomain}/${t.mailbox}`,
    ...(t.name === 'northwind' ? ['    sendAs: [alerts@northwind.com]'] : []),
    `    ca: ${caFile}`,
    `    oauth: { clientId: ${t.name}-graph, clientSecret: ${t.name}-graph-secret, authority: ${t.idp.base} }`,
    // graph.base with or without the version: northwind's is given as …/v1.0
    `    graph: { base: ${t.graph.base}${t.name === 'northwind' ? '/v1.0' : ''} }`,
  ]);
  relay = await startRelay([
    'upstreams:', ...upstreams,
    'routes:',
    '  - { name: contoso, upstreams: [contoso-smtp, contoso-graph] }',
    '  - { name: fabrikam, upstreams: [fabrikam-smtp, fabrikam-graph] }',
    '  - { name: northwind, upstreams: [northwind-graph, northwind-smtp] }',
    '  - { name: fallback, upstreams: [northwind-smtp], sender: { mode: rewrite, rewriteTo: relay@northwind.com } }',
    'routing:',
    '  rules:',
    '    - { senderDomains: [contoso.com], recipientDomains: [partner.example], route: fallback }',
    '    - { senderDomains: [contoso.com], route: contoso }',
    '    - { senderDomains: [fabrikam.com], route: fabrikam }',
    '    - { senderDomains: [northwind.com], route: northwind }',
    '  default: fallback',
    'delivery: { retry: [1s], scanInterval: 200ms }',
  ].join('\n'));
});

after(async () => {
  await relay?.stop();
  if (relay) rmSync(relay.dir, { recursive: true, force: true });
  for (const t of tenants) await Promise.all([t.exo.close(), t.graph.close(), t.idp.close()]);
  tmp?.cleanup();
});

test('three sender domains reach three tenants, each through its own app and mailbox', async () => {
  for (const [from, subject] of [['scanner@contoso.com', 'to contoso'], ['relay@fabrikam.com', 'to fabrikam'], ['alerts@northwind.com', 'to northwind']]) {
    const r = await swaks(from, 'ops@example.org', subject);
    assert.equal(r.code, 0, r.out);
  }
  await waitUntil('all three', () => ['to contoso', 'to fabrikam', 'to northwind'].every((s) => everywhere(s).length === 1));
  assert.deepEqual(everywhere('to contoso'), ['contoso']);
  assert.deepEqual(everywhere('to fabrikam'), ['fabrikam']);
  assert.deepEqual(everywhere('to northwind'), ['northwind']);
  assert.equal(tenant('contoso').exo.received.find(subjectIs('to contoso'))!.user, 'scanner@contoso.com');
  assert.equal(tenant('fabrikam').exo.received.find(subjectIs('to fabrikam'))!.user, 'relay@fabrikam.com');
  const nw = tenant('northwind').graph.sent.find((m) => m.subject === 'to northwind')!;
  assert.equal(nw.mailbox, 'relay@northwind.com', 'northwind\'s route starts with Graph');
  assert.equal(nw.from, 'alerts@northwind.com');
  for (const t of tenants) assert.ok((t.idp.issued.client_credentials ?? 0) >= 1, `${t.name}'s own identity platform issued the token`);
});

test('an unmatched sender takes the default route (rewritten to its mailbox, Reply-To kept)', async () => {
  const r = await swaks('copier@printer.local', 'ops@example.org', 'unmatched sender');
  assert.equal(r.code, 0, r.out);
  await waitUntil('the default route', () => everywhere('unmatched sender').length === 1);
  assert.deepEqual(everywhere('unmatched sender'), ['northwind']);
  const got = tenant('northwind').exo.received.find(subjectIs('unmatched sender'))!;
  assert.equal(got.mailFrom, 'relay@northwind.com');
  const parsed = await simpleParser(got.raw);
  assert.equal(parsed.from?.value[0]?.address, 'relay@northwind.com');
  assert.equal(parsed.replyTo?.value[0]?.address, 'copier@printer.local');
});

test('a message whose recipients need two routes is split: one queue id, each part through its route', async () => {
  const r = await swaks('scanner@contoso.com', 'alice@contoso.com,bob@partner.example', 'split message');
  assert.equal(r.code, 0, r.out);
  await waitUntil('both parts', () => everywhere('split message').length === 2);
  const a = tenant('contoso').exo.received.find(subjectIs('split message'))!;
  const b = tenant('northwind').exo.received.find(subjectIs('split message'))!;
  assert.deepEqual([a.rcptTo, a.mailFrom], [['alice@contoso.com'], 'scanner@contoso.com']);
  assert.deepEqual([b.rcptTo, b.mailFrom], [['bob@partner.example'], 'relay@northwind.com']);
  const id = /queued as (\S+)/.exec(r.out)?.[1];
  assert.ok(id, r.out);
  const attempts = relay.output().split('\n').filter((l) => l.includes('"delivery attempt"') && l.includes(id!)).map((l) => JSON.parse(l) as { route?: string; upstream: string });
  assert.deepEqual(attempts.map((x) => [x.route, x.upstream]).sort(), [['contoso', 'contoso-smtp'], ['fallback', 'northwind-smtp']]);
});

test('NDRs for each tenant go back through that tenant as its mailbox, and its strict stand-in takes them', async () => {
  tenant('contoso').exo.refuseRcpt.set('gone@contoso.com', '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup');
  tenant('fabrikam').exo.refuseRcpt.set('gone@fabrikam.com', '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup');
  tenant('northwind').graph.refuseRecipients.add('gone@northwind.com');
  for (const [from, to] of [['scanner@contoso.com', 'gone@contoso.com'], ['relay@fabrikam.com', 'gone@fabrikam.com'], ['alerts@northwind.com', 'gone@northwind.com']]) {
    const r = await swaks(from, to, `bounce ${to}`);
    assert.equal(r.code, 0, r.out);
  }
  const ndrAt = (t: Tenant, s: string) => t.exo.received.find(subjectIs(`Undeliverable: ${s}`)) ?? t.graph.sent.find((m) => m.subject === `Undeliverable: ${s}`);
  await waitUntil('three NDRs', () => ['contoso', 'fabrikam', 'northwind'].every((n) => ndrAt(tenant(n), `bounce gone@${n}.com`)));
  const c = tenant('contoso').exo.received.find(subjectIs('Undeliverable: bounce gone@contoso.com'))!;
  assert.deepEqual([c.user, c.mailFrom, c.from, c.rcptTo], ['scanner@contoso.com', 'scanner@contoso.com', 'scanner@contoso.com', ['scanner@contoso.com']]);
  const f = tenant('fabrikam').exo.received.find(subjectIs('Undeliverable: bounce gone@fabrikam.com'))!;
  assert.deepEqual([f.user, f.mailFrom, f.from, f.rcptTo], ['relay@fabrikam.com', 'relay@fabrikam.com', 'relay@fabrikam.com', ['relay@fabrikam.com']]);
  const n = tenant('northwind').graph.sent.find((m) => m.subject === 'Undeliverable: bounce gone@northwind.com')!;
  assert.deepEqual([n.mailbox, n.from, n.to], ['relay@northwind.com', 'relay@northwind.com', ['alerts@northwind.com']]);
  for (const t of tenants) assert.deepEqual(t.exo.refusedSenders, [], `${t.name} refused no sender`);
  assert.equal(everywhere('Undeliverable: bounce gone@contoso.com').length, 1, 'each report only at its own tenant');
});
