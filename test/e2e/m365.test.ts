// Microsoft 365 upstreams end to end (issue 4, "what it must show"): real clients (swaks, Python's
// smtplib) → `smarthost serve` as a child process (listener, sender policy, spool, delivery manager,
// parking) → the Microsoft stand-ins of test/helpers/m365/ (identity platform over https, Exchange
// Online submission with XOAUTH2 only, Graph, a tenant MX endpoint). The stand-ins are shared by all
// cases; each case group runs its own relay with a short retry ladder.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { simpleParser } from 'mailparser';
import { startRelay, freePort, waitPort, CLI, NODE, type RelayProcess } from '../helpers/relay.ts';
import { startIdentity, type IdentityStandIn } from '../helpers/m365/identity.ts';
import { startExchangeSmtp, startMxStandIn, type SmtpStandIn, type Received } from '../helpers/m365/smtp.ts';
import { startGraph, type GraphStandIn } from '../helpers/m365/graph.ts';
import { loopbackCert, namedCert, tempDir } from '../helpers/m365/pki.ts';
import { withAttachment } from '../helpers/m365/message.ts';

const MAILBOX = 'scanner@contoso.com';
const FAST = 'delivery: { retry: [1s], scanInterval: 200ms }';

let tmp: ReturnType<typeof tempDir>;
let caFile: string;
let idp: IdentityStandIn;
let exo: SmtpStandIn;
let graph: GraphStandIn;
const cleanups: Array<() => Promise<void>> = [];

before(async () => {
  tmp = tempDir('sh-e2e-m365-');
  const tls = await loopbackCert();
  caFile = tmp.write('ca.pem', tls.cert);
  idp = await startIdentity(tls);
  exo = await startExchangeSmtp(tls, idp);
  graph = await startGraph(idp);
  idp.register({ clientId: 'smtp-app', secret: 'smtp-secret', roles: { 'https://outlook.office365.com': ['SMTP.SendAsApp'] } });
  idp.register({ clientId: 'graph-app', secret: 'graph-secret', roles: { 'https://graph.microsoft.com': ['Mail.Send', 'Mail.ReadWrite'] } });
  idp.register({ clientId: 'public', publicClient: true });
  exo.fullAccess.set('smtp-app', [MAILBOX]);
  // the on-behalf grant (Set-Mailbox boss -GrantSendOnBehalfTo scanner), as the stand-ins model it
  graph.mailboxes.set(MAILBOX, ['boss@contoso.com']);
});

after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
  await Promise.all([exo?.close(), graph?.close(), idp?.close()]);
  tmp?.cleanup();
});

// ---- helpers -------------------------------------------------------------------------------------

function run(cmd: string, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 60_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, out: `${stdout}${stderr}` });
    });
  });
}

async function relayWith(yaml: string): Promise<RelayProcess> {
  const r = await startRelay(yaml);
  cleanups.push(async () => {
    await r.stop();
    rmSync(r.dir, { recursive: true, force: true });
  });
  return r;
}

async function waitUntil(what: string, check: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`timed out waiting for ${what}`);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** swaks to the relay; extra args as swaks takes them. */
function swaks(relay: RelayProcess, from: string, to: string, subject: string, extra: string[] = []) {
  return run('swaks', ['--server', `127.0.0.1:${relay.port}`, '--from', from, '--to', to, '--h-Subject', subject, '--body', `body of ${subject}`, ...extra]);
}

interface QueueEntry { state: string; id: string; lastError?: string; waitingForUpstream?: string; envelope: { mailFrom: string }; recipients: { address: string; state: string }[] }

/** `smarthost queue list --json` against the relay's config (another process reading the spool). */
async function queueList(relay: RelayProcess): Promise<QueueEntry[]> {
  const r = await run(NODE, [CLI, 'queue', 'list', '--json', '--config', relay.configFile]);
  assert.equal(r.code, 0, r.out);
  return r.out.includes('The queue is empty') ? [] : JSON.parse(r.out) as QueueEntry[];
}

const files = (dir: string) => (existsSync(dir) ? readdirSync(dir) : []);
const badmail = (relay: RelayProcess) => files(path.join(relay.mailroot, 'badmail'));
const subjectIs = (s: string) => (m: Received) => /^Subject: (.*)$/m.exec(m.raw.toString('latin1'))?.[1]?.trim() === s;

function smtpUpstream(name: string, extra = '', mailbox = MAILBOX): string {
  return [
    `  - name: ${name}`,
    `    url: smtp+starttls://127.0.0.1:${exo.port}`,
    '    auth: xoauth2',
    `    mailbox: ${mailbox}`,
    `    ca: ${caFile}`,
    `    oauth: { tenant: ${idp.tenantDomain}, clientId: smtp-app, clientSecret: smtp-secret, authority: ${idp.base} }`,
    extra,
  ].filter(Boolean).join('\n');
}

function graphUpstream(name: string, extra = ''): string {
  return [
    `  - name: ${name}`,
    `    url: graph://${idp.tenantDomain}/${MAILBOX}`,
    `    ca: ${caFile}`,
    `    oauth: { clientId: graph-app, clientSecret: graph-secret, authority: ${idp.base} }`,
    `    graph: { base: ${graph.base} }`,
    extra,
  ].filter(Boolean).join('\n');
}

// ---- cases ---------------------------------------------------------------------------------------

test('token expiry while messages are queued: Exchange refuses the dead token, it is renewed, the message is delivered (no parking)', async () => {
  // tokens die after 2 s but are announced for an hour: only Exchange's 535 5.7.3 tells the relay
  idp.tokenLifetime = 2;
  idp.announcedLifetime = 3600;
  try {
    const relay = await relayWith(['upstreams:', smtpUpstream('o365', '    maxMessagesPerConnection: 1'), FAST].join('\n'));
    const first = await swaks(relay, MAILBOX, 'alice@contoso.com', 'expiry 1');
    assert.equal(first.code, 0, first.out);
    await waitUntil('the first message at Exchange', () => exo.received.some(subjectIs('expiry 1')));
    const issued = idp.issued.client_credentials ?? 0;
    await sleep(2500);
    const authsBefore = exo.auths.length;
    const second = await swaks(relay, MAILBOX, 'alice@contoso.com', 'expiry 2');
    assert.equal(second.code, 0, second.out);
    await waitUntil('the second message at Exchange', () => exo.received.some(subjectIs('expiry 2')));
    assert.deepEqual(exo.auths.slice(authsBefore).map((a) => a.slice(0, 5)), ['5.7.3', '235'], 'one refusal, one renewal');
    assert.match(exo.auths[authsBefore], /expired/);
    assert.equal((idp.issued.client_credentials ?? 0) - issued, 1, 'exactly one new token');
    await waitUntil('an empty queue', async () => (await queueList(relay)).length === 0, 5000);
    assert.deepEqual(badmail(relay), []);
    assert.doesNotMatch(relay.output(), /"state":"parked"|which is parked/);
  } finally {
    idp.tokenLifetime = 3600;
    idp.announcedLifetime = undefined;
  }
});

test('revoked refresh token (delegated): messages wait in the queue with a clear reason, no bounce; a new sign-in delivers them', async () => {
  const relay = await relayWith([
    'upstreams:',
    '  - name: alice',
    `    url: smtp+starttls://127.0.0.1:${exo.port}`,
    '    auth: xoauth2',
    '    mailbox: alice@contoso.com',
    `    ca: ${caFile}`,
    `    oauth: { mode: delegated, tenant: ${idp.tenantDomain}, clientId: public, authority: ${idp.base} }`,
    'delivery: { retry: [1s], scanInterval: 200ms, upstreamProbeInterval: 2s }',
  ].join('\n'));
  const login = () => new Promise<{ code: number; out: string }>((resolve) => {
    let out = '';
    let approved = false;
    const child = execFile(NODE, [CLI, 'm365', 'login', '--config', relay.configFile, '--upstream', 'alice'], { timeout: 30_000 }, (err) => resolve({ code: err ? 1 : 0, out }));
    const watch = (d: Buffer) => {
      out += d;
      const code = /enter the code ([0-9A-F]{8})/.exec(out)?.[1];
      if (code && !approved) { approved = true; idp.approveDevice(code, 'alice@contoso.com'); }
    };
    child.stdout!.on('data', watch);
    child.stderr!.on('data', watch);
  });
  const signedIn = await login();
  assert.equal(signedIn.code, 0, signedIn.out);
  idp.revokeUser('alice@contoso.com');

  const sent = await swaks(relay, 'alice@contoso.com', 'bob@fabrikam.example', 'revoked grant');
  assert.equal(sent.code, 0, sent.out);
  let entry: QueueEntry | undefined;
  await waitUntil('the message parked with its reason', async () => {
    entry = (await queueList(relay)).find((e) => e.envelope.mailFrom === 'alice@contoso.com');
    return Boolean(entry?.lastError);
  });
  assert.equal(entry!.state, 'deferred');
  assert.equal(entry!.waitingForUpstream, 'alice');
  assert.match(entry!.lastError!, /parked/);
  assert.match(entry!.lastError!, /revoked/);
  assert.match(entry!.lastError!, /AADSTS50173/);
  const shown = await run(NODE, [CLI, 'queue', 'show', entry!.id, '--config', relay.configFile]);
  assert.match(shown.out, /waiting for upstream alice/);
  assert.match(shown.out, /smarthost m365 login/, 'the reason says what to do');
  assert.match(relay.output(), /AADSTS50173/, 'the log says it too');
  await sleep(1000);
  assert.deepEqual(badmail(relay), [], 'no bounce');
  assert.equal((await queueList(relay)).length, 1, 'no NDR queued, the message still waits');
  assert.ok(!exo.received.some(subjectIs('revoked grant')));

  // the admin signs in again; the next probe of the parked route delivers
  const again = await login();
  assert.equal(again.code, 0, again.out);
  await waitUntil('delivery after the new sign-in', () => exo.received.some(subjectIs('revoked grant')));
  assert.equal(exo.received.find(subjectIs('revoked grant'))!.user, 'alice@contoso.com');
});

test('535 5.7.139 (SMTP AUTH disabled) parks the route: messages wait, no NDR, no retry loop; the fix and the probe release them', async () => {
  exo.smtpAuthDisabled = true;
  try {
    const relay = await relayWith(['upstreams:', smtpUpstream('o365'), 'delivery: { retry: [1s], scanInterval: 200ms, upstreamProbeInterval: 3s }'].join('\n'));
    const authsBefore = exo.auths.length;
    const r1 = await swaks(relay, MAILBOX, 'alice1@contoso.com', 'auth disabled 1');
    assert.equal(r1.code, 0, r1.out);
    await waitUntil('the refusal', () => exo.auths.slice(authsBefore).includes('5.7.139'));
    // mail arriving for a parked route waits without touching Microsoft
    const r2 = await swaks(relay, MAILBOX, 'alice2@contoso.com', 'auth disabled 2');
    assert.equal(r2.code, 0, r2.out);
    let queued: QueueEntry[] = [];
    await waitUntil('both messages parked', async () => {
      queued = await queueList(relay);
      // (a probe may have one in active/ for a moment: wait until both are back, waiting)
      return queued.length === 2 && queued.every((e) => e.waitingForUpstream === 'o365' && e.state === 'deferred');
    });
    for (const e of queued) {
      assert.equal(e.state, 'deferred');
      assert.match(e.lastError ?? '', /parked: 535 5\.7\.139/);
    }
    // One refusal parks the route: the second message is not tried, nothing is retried in a loop. The
    // probe (upstreamProbeInterval: 3s) may come while this runs on a busy machine: every refusal after
    // the first must be such a probe, at least 3 s after the one before (the relay's own log, not a
    // time window of this test).
    const id1 = /queued as (\S+)/.exec(r1.out)?.[1];
    const refusals = () => relay.output().split('\n').filter((l) => l.includes('"delivery attempt"') && l.includes('5.7.139'))
      .map((l) => JSON.parse(l) as { id: string; time: number });
    const seen = exo.auths.slice(authsBefore).filter((a) => a === '5.7.139').length;
    await waitUntil('every refusal the upstream gave in the relay log', () => refusals().length >= seen);
    const logged = refusals();
    assert.equal(logged[0].id, id1, 'the first message met the refusal');
    for (let i = 1; i < logged.length; i++) {
      assert.ok(logged[i].time - logged[i - 1].time >= 3000, `refusal ${i + 1} came ${logged[i].time - logged[i - 1].time} ms after the one before: a retry loop, not a probe`);
    }
    assert.deepEqual(badmail(relay), []);
    // (a probe may be moving one of the two between folders right now: count NDRs, not files)
    const left = await queueList(relay);
    assert.deepEqual(left.filter((e) => e.envelope.mailFrom === ''), [], 'no NDR');
    // the tenant admin turns SMTP AUTH back on for the mailbox; the probe finds the route working
    exo.smtpAuthDisabled = false;
    await waitUntil('both delivered', () => exo.received.some(subjectIs('auth disabled 1')) && exo.received.some(subjectIs('auth disabled 2')))
      .catch(async (e: Error) => { throw new Error(`${e.message}; queue: ${JSON.stringify(await queueList(relay))}`); });
    await waitUntil('an empty queue', async () => (await queueList(relay)).length === 0, 5000);
    assert.deepEqual(badmail(relay), []);
  } finally {
    exo.smtpAuthDisabled = false;
  }
});

test('535 5.7.3 after a fresh token (FullAccess removed): one renewal, parked (console shows why), released by the admin from the console', async () => {
  exo.fullAccess.set('smtp-app', []);
  try {
    const webPort = await freePort();
    // the probe is far off (default 15 minutes): only the admin's release can send it now
    const relay = await relayWith(['upstreams:', smtpUpstream('o365'), FAST, 'web:', '  address: 127.0.0.1', `  port: ${webPort}`].join('\n'));
    await waitPort(webPort);
    const authsBefore = exo.auths.length;
    const r = await swaks(relay, MAILBOX, 'alice@contoso.com', 'no full access');
    assert.equal(r.code, 0, r.out);
    let entry: QueueEntry | undefined;
    await waitUntil('the message parked', async () => {
      entry = (await queueList(relay)).find((e) => e.waitingForUpstream === 'o365');
      return Boolean(entry);
    });
    assert.match(entry!.lastError ?? '', /parked: 535 5\.7\.3/);
    assert.deepEqual(exo.auths.slice(authsBefore), ['5.7.3 no FullAccess', '5.7.3 no FullAccess'], 'a token, then one fresh token: no loop');
    assert.deepEqual(badmail(relay), []);

    // the console (open on loopback without a password): session + CSRF token, upstream state, release
    const web = `http://127.0.0.1:${webPort}`;
    const session = await fetch(`${web}/api/session`);
    assert.equal(session.status, 200);
    const cookie = (session.headers.get('set-cookie') ?? '').split(';')[0];
    const { csrf } = await session.json() as { csrf: string };
    const status = await (await fetch(`${web}/api/upstreams`, { headers: { cookie } })).json() as { upstreams: { name: string; state: string; reason?: string }[] };
    const o365 = status.upstreams.find((u) => u.name === 'o365');
    assert.equal(o365?.state, 'parked');
    assert.match(o365?.reason ?? '', /5\.7\.3/);

    exo.fullAccess.set('smtp-app', [MAILBOX]);
    await sleep(1000);
    assert.ok(!exo.received.some(subjectIs('no full access')), 'still parked until released');
    const release = await fetch(`${web}/api/upstreams/o365/release`, { method: 'POST', headers: { cookie, 'x-csrf-token': csrf } });
    assert.equal(release.status, 200, await release.text());
    await waitUntil('delivery after the release', () => exo.received.some(subjectIs('no full access')));
    await waitUntil('an empty queue', async () => (await queueList(relay)).length === 0, 5000);
  } finally {
    exo.fullAccess.set('smtp-app', [MAILBOX]);
  }
});

let graphRelay: RelayProcess | undefined;
async function relayToGraph(): Promise<RelayProcess> {
  graphRelay ??= await relayWith(['upstreams:', graphUpstream('graph'), FAST].join('\n'));
  return graphRelay;
}

test('Graph answers 429 with Retry-After: the message waits that long (longer than the retry ladder), then goes', async () => {
  const relay = await relayToGraph();
  graph.throttle(1, 3);
  const before = graph.requests.length;
  const r = await swaks(relay, MAILBOX, 'alice@contoso.com', 'throttled');
  assert.equal(r.code, 0, r.out);
  await waitUntil('the 429', () => graph.requests.slice(before).some((q) => q.status === 429));
  const throttledAt = Date.now();
  await waitUntil('the throttled message at Graph', () => graph.sent.some((m) => m.subject === 'throttled'));
  const waited = Date.now() - throttledAt;
  // the retry ladder alone (1 s) would have tried again after a second
  assert.ok(waited >= 2500, `waited ${waited} ms after a Retry-After of 3 s`);
  const mine = graph.requests.slice(before).filter((q) => q.path.endsWith('/sendMail'));
  assert.deepEqual(mine.map((q) => q.status), [429, 202]);
  let left: QueueEntry[] = [];
  await waitUntil('an empty queue', async () => (left = await queueList(relay)).length === 0, 5000).catch((e: Error) => { throw new Error(`${e.message}: ${JSON.stringify(left)}`); });
  assert.deepEqual(badmail(relay), []);
  // 202 means Microsoft has it: sent once, never again on the retry ladder
  await sleep(1500);
  assert.equal(graph.sent.filter((m) => m.subject === 'throttled').length, 1);
});

test('a Bcc-only recipient (envelope only) reaches Graph as Bcc; To stays as written', async () => {
  const relay = await relayToGraph();
  const r = await swaks(relay, MAILBOX, 'alice@contoso.com,hidden@fabrikam.example', 'bcc only', ['--h-To', 'alice@contoso.com']);
  assert.equal(r.code, 0, r.out);
  await waitUntil('the message at Graph', () => graph.sent.some((m) => m.subject === 'bcc only'));
  const m = graph.sent.find((x) => x.subject === 'bcc only')!;
  assert.deepEqual(m.to, ['alice@contoso.com']);
  assert.deepEqual(m.bcc, ['hidden@fabrikam.example']);
  assert.deepEqual(m.cc, []);
});

test('a 10 MB message goes through Graph as draft + upload session, no request over 4 MB, attachment intact', async () => {
  const relay = await relayToGraph();
  const { raw, attachment } = withAttachment(MAILBOX, 'alice@contoso.com', 10 * 1024 * 1024);
  const file = path.join(relay.dir, 'big.eml');
  writeFileSync(file, raw);
  const before = graph.requests.length;
  const py = await run('/usr/bin/python3', ['-c', [
    'import smtplib',
    `s = smtplib.SMTP("127.0.0.1", ${relay.port}, timeout=60)`,
    's.ehlo("mfp.local")',
    `s.sendmail("${MAILBOX}", ["alice@contoso.com"], open(${JSON.stringify(file)}, "rb").read())`,
    's.quit()',
  ].join('\n')]);
  assert.equal(py.code, 0, py.out);
  await waitUntil('the big message at Graph', () => graph.sent.some((m) => m.subject === 'scan with a big attachment'), 40_000);
  const m = graph.sent.find((x) => x.subject === 'scan with a big attachment')!;
  assert.equal(m.via, 'draft');
  assert.deepEqual(m.attachments.map((a) => [a.name, a.size, a.sha256]), [['scan.pdf', attachment.length, createHash('sha256').update(attachment).digest('hex')]]);
  const mine = graph.requests.slice(before);
  assert.ok(mine.every((q) => q.bytes <= 4 * 1024 * 1024), `requests: ${mine.map((q) => q.bytes).join(', ')}`);
  assert.ok(mine.some((q) => q.path.startsWith('/upload/')), 'an upload session was used');
});

test('sender policy: a disallowed sender is refused by smarthost itself with 550 5.7.60 before 250 (MAIL FROM and From header)', async () => {
  const relay = await relayWith([
    'upstreams:', smtpUpstream('o365'),
    'senders:',
    `  - { clients: [127.0.0.1], allow: [${MAILBOX}], upstream: o365 }`,
    FAST,
  ].join('\n'));
  const authsBefore = exo.auths.length;
  const envelope = await swaks(relay, 'intruder@contoso.com', 'alice@contoso.com', 'not allowed');
  assert.notEqual(envelope.code, 0);
  assert.match(envelope.out, /<\*\* 550 5\.7\.60 Sender <intruder@contoso\.com> refused/);
  assert.doesNotMatch(envelope.out, /queued as/);
  const header = await swaks(relay, MAILBOX, 'alice@contoso.com', 'header not allowed', ['--h-From', 'intruder@contoso.com']);
  assert.notEqual(header.code, 0);
  assert.match(header.out, /<\*\* 550 5\.7\.60 Sender <intruder@contoso\.com> refused/);
  assert.doesNotMatch(header.out, /queued as/);
  await sleep(500);
  assert.deepEqual(await queueList(relay), []);
  assert.equal(exo.auths.length, authsBefore, 'Microsoft never saw it');
});

test('rewrite and on-behalf modes: the upstream sees the right From, Sender and Reply-To', async () => {
  const relay = await relayWith([
    'upstreams:', smtpUpstream('o365'), graphUpstream('graph', '    sendAs: [boss@contoso.com]'),
    'senders:',
    `  - { clients: [127.0.0.2], allow: ["*@contoso.com"], mode: rewrite, rewriteTo: ${MAILBOX}, upstream: o365 }`,
    '  - { clients: [127.0.0.3], allow: [boss@contoso.com], mode: on-behalf, upstream: graph }',
    FAST,
  ].join('\n'));
  const rw = await swaks(relay, 'copier-3f@contoso.com', 'alice@contoso.com', 'rewritten', ['--local-interface', '127.0.0.2']);
  assert.equal(rw.code, 0, rw.out);
  const ob = await swaks(relay, 'boss@contoso.com', 'alice@contoso.com', 'on behalf', ['--local-interface', '127.0.0.3']);
  assert.equal(ob.code, 0, ob.out);
  await waitUntil('the rewritten message at Exchange', () => exo.received.some(subjectIs('rewritten')));
  const got = exo.received.find(subjectIs('rewritten'))!;
  const parsed = await simpleParser(got.raw);
  assert.equal(got.mailFrom, MAILBOX);
  assert.equal(parsed.from?.value[0]?.address, MAILBOX);
  assert.equal(parsed.replyTo?.value[0]?.address, 'copier-3f@contoso.com');
  await waitUntil('the on-behalf message at Graph', () => graph.sent.some((m) => m.subject === 'on behalf'));
  const g = graph.sent.find((m) => m.subject === 'on behalf')!;
  assert.equal(g.from, 'boss@contoso.com');
  assert.equal(g.sender, MAILBOX);
  assert.equal(g.mailbox, MAILBOX);
});

test('a 1,500-recipient message is split into 3 submissions of 500 at the upstream', async () => {
  const relay = await relayWith(['limits: { maxRecipients: 2000 }', 'upstreams:', smtpUpstream('o365'), FAST].join('\n'));
  const rcpts = Array.from({ length: 1500 }, (_, i) => `user${String(i).padStart(4, '0')}@fabrikam.example`);
  const py = await run('/usr/bin/python3', ['-c', [
    'import smtplib',
    `rcpts = ["user%04d@fabrikam.example" % i for i in range(1500)]`,
    `s = smtplib.SMTP("127.0.0.1", ${relay.port}, timeout=60)`,
    's.ehlo("erp.local")',
    `refused = s.sendmail("${MAILBOX}", rcpts, "From: ${MAILBOX}\\r\\nTo: undisclosed-recipients:;\\r\\nSubject: mass mailing\\r\\n\\r\\nnewsletter\\r\\n")`,
    'assert not refused, refused',
    's.quit()',
  ].join('\n')]);
  assert.equal(py.code, 0, py.out);
  await waitUntil('all 1,500 recipients at Exchange', () => exo.received.filter(subjectIs('mass mailing')).reduce((n, m) => n + m.rcptTo.length, 0) >= 1500, 30_000);
  const parts = exo.received.filter(subjectIs('mass mailing'));
  assert.deepEqual(parts.map((m) => m.rcptTo.length), [500, 500, 500]);
  assert.deepEqual(parts.flatMap((m) => m.rcptTo).sort(), rcpts);
  await waitUntil('an empty queue', async () => (await queueList(relay)).length === 0, 5000);
});

test('connector mode: the tenant MX endpoint sees the client certificate over STARTTLS', async () => {
  const tls = await loopbackCert();
  const relayCert = await namedCert('relay.contoso.com');
  const certFile = tmp.write('connector.pem', relayCert.cert + relayCert.key);
  const mxCa = tmp.write('mx-ca.pem', tls.cert);
  const mx = await startMxStandIn(tls, { requestCert: true, trust: [relayCert.cert] });
  cleanups.push(() => mx.close());
  const relay = await relayWith([
    'upstreams:',
    '  - name: tenant',
    '    url: connector://contoso.com',
    `    ca: ${mxCa}`,
    `    connector: { host: 127.0.0.1, port: ${mx.port}, clientCertificate: ${certFile} }`,
    FAST,
  ].join('\n'));
  const r = await swaks(relay, 'alarm@contoso.com', 'ops@contoso.com', 'via connector');
  assert.equal(r.code, 0, r.out);
  await waitUntil('the message at the MX endpoint', () => mx.received.length === 1);
  assert.equal(mx.received[0].tls, true);
  assert.equal(mx.received[0].clientCertCN, 'relay.contoso.com');
  assert.equal(mx.received[0].mailFrom, 'alarm@contoso.com');
  assert.deepEqual(mx.received[0].rcptTo, ['ops@contoso.com']);
  await waitUntil('an empty queue', async () => (await queueList(relay)).length === 0, 5000);
  await sleep(1500);
  assert.equal(mx.received.length, 1, 'accepted by the MX endpoint: sent once');
});

// ---- NDRs through Microsoft 365 (issue 15.1) -----------------------------------------------------

test('a recipient refused by Exchange: the NDR goes back through SMTP AUTH as the mailbox (envelope and From), and the strict stand-in takes it', async () => {
  exo.refuseRcpt.set('nobody@contoso.com', '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup');
  try {
    const relay = await relayWith(['upstreams:', smtpUpstream('o365'), FAST].join('\n'));
    const refusedBefore = exo.refusedSenders.length;
    const r = await swaks(relay, MAILBOX, 'nobody@contoso.com', 'bounced by exchange');
    assert.equal(r.code, 0, r.out);
    await waitUntil('the NDR at Exchange', () => exo.received.some(subjectIs('Undeliverable: bounced by exchange')));
    const ndr = exo.received.find(subjectIs('Undeliverable: bounced by exchange'))!;
    assert.equal(ndr.mailFrom, MAILBOX, 'envelope sender is the mailbox, not <>');
    assert.equal(ndr.from, MAILBOX);
    assert.deepEqual(ndr.rcptTo, [MAILBOX]);
    const text = ndr.raw.toString('latin1');
    assert.match(text, /Content-Type: multipart\/report; report-type=delivery-status/);
    assert.match(text, /^Auto-Submitted: auto-replied/m);
    assert.match(text, /Final-Recipient: rfc822; nobody@contoso\.com\r\nAction: failed\r\nStatus: 5\.1\.10/);
    assert.match(text, /Content-Type: text\/rfc822-headers[\s\S]*Subject: bounced by exchange/, "the original's headers");
    assert.deepEqual(exo.refusedSenders.slice(refusedBefore), [], 'nothing refused as a sender');
    await waitUntil('an empty queue', async () => (await queueList(relay)).length === 0, 5000);
    // the original is in badmail (refused); the report is not
    assert.equal(badmail(relay).filter((f) => f.endsWith('.BAD')).length, 1);
  } finally {
    exo.refuseRcpt.delete('nobody@contoso.com');
  }
});

test('NDRs sent through Graph (ndr.upstream) go as the mailbox; an ndr.from the mailbox may not use is replaced by it, with a warning', async () => {
  exo.refuseRcpt.set('ghost@contoso.com', '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup');
  try {
    const relay = await relayWith(['upstreams:', smtpUpstream('o365'), graphUpstream('graph'), 'ndr: { upstream: graph, from: postmaster@contoso.com }', FAST].join('\n'));
    const r = await swaks(relay, MAILBOX, 'ghost@contoso.com', 'bounced, reported via graph');
    assert.equal(r.code, 0, r.out);
    await waitUntil('the NDR at Graph', () => graph.sent.some((m) => m.subject === 'Undeliverable: bounced, reported via graph'));
    const m = graph.sent.find((x) => x.subject === 'Undeliverable: bounced, reported via graph')!;
    assert.equal(m.mailbox, MAILBOX);
    assert.equal(m.from, MAILBOX, 'postmaster@ is not sendable by the mailbox: the mailbox is used');
    assert.deepEqual(m.to, [MAILBOX]);
    assert.match(relay.output(), /ndr\.from postmaster@contoso\.com is not an address mailbox scanner@contoso\.com may send as/);
    await waitUntil('an empty queue', async () => (await queueList(relay)).length === 0, 5000);
  } finally {
    exo.refuseRcpt.delete('ghost@contoso.com');
  }
});

test('the strict stand-in refuses a null sender as Exchange does (so the NDR tests above can fail); the refused message stays in badmail', async () => {
  const relay = await relayWith(['upstreams:', smtpUpstream('o365'), FAST].join('\n'));
  const before = exo.refusedSenders.length;
  const r = await run('/usr/bin/python3', ['-c', [
    'import smtplib',
    `s = smtplib.SMTP("127.0.0.1", ${relay.port}, timeout=30)`,
    `s.sendmail("", ["alice@contoso.com"], "From: ${MAILBOX}\\r\\nSubject: null sender through exchange\\r\\n\\r\\nreport\\r\\n")`,
    's.quit()',
  ].join('\n')]);
  assert.equal(r.code, 0, r.out);
  await waitUntil('the null sender refused', () => exo.refusedSenders.slice(before).includes('<> 550 5.7.60'));
  await waitUntil('the refused report kept in badmail', () => badmail(relay).some((f) => f.endsWith('.BDR')));
  assert.ok(!exo.received.some(subjectIs('null sender through exchange')));
});

// ---- quotas per mailbox (issue 15.2) --------------------------------------------------------------

test('two upstreams signing in as the same mailbox never hold more than 3 connections together (Exchange answers 432 4.3.2 beyond)', async () => {
  // a mailbox of its own: the relays of earlier cases keep idle sessions open as MAILBOX
  const POOL = 'pool@contoso.com';
  exo.fullAccess.set('smtp-app', [MAILBOX, POOL]);
  exo.sessionLimit = 3;
  try {
    const relay = await relayWith([
      'upstreams:', smtpUpstream('first', '', POOL), smtpUpstream('second', '', POOL),
      'senders:',
      `  - { clients: [127.0.0.2], allow: [${POOL}], upstream: first }`,
      `  - { clients: [127.0.0.3], allow: [${POOL}], upstream: second }`,
      FAST,
    ].join('\n'));
    const refusedBefore = exo.refusedConnections;
    const sends = Array.from({ length: 16 }, (_, i) => swaks(relay, POOL, `c${i}@contoso.com`, `pool ${i}`, ['--local-interface', i % 2 ? '127.0.0.2' : '127.0.0.3']));
    for (const r of await Promise.all(sends)) assert.equal(r.code, 0, r.out);
    await waitUntil('all 16 at Exchange', () => Array.from({ length: 16 }, (_, i) => `pool ${i}`).every((s) => exo.received.some(subjectIs(s))), 40_000);
    assert.ok((exo.maxSessions.get(POOL) ?? 0) <= 3, `at most 3 sessions at once, saw ${exo.maxSessions.get(POOL)}`);
    assert.ok((exo.maxSessions.get(POOL) ?? 0) >= 2, 'both upstreams were used in parallel');
    assert.equal(exo.refusedConnections - refusedBefore, 0, 'no 432 4.3.2');
  } finally {
    exo.sessionLimit = undefined;
    exo.fullAccess.set('smtp-app', [MAILBOX]);
  }
});

test('Graph 429 with Retry-After holds every message of that mailbox, not only the refused one; nothing bounces', async () => {
  const relay = await relayWith(['upstreams:', graphUpstream('graph'), FAST].join('\n'));
  graph.throttle(1, 3);
  const before = graph.requests.length;
  const first = await swaks(relay, MAILBOX, 'alice@contoso.com', 'held 1');
  assert.equal(first.code, 0, first.out);
  await waitUntil('the 429', () => graph.requests.slice(before).some((q) => q.status === 429));
  const second = await swaks(relay, MAILBOX, 'bob@contoso.com', 'held 2');
  assert.equal(second.code, 0, second.out);
  await waitUntil('both at Graph', () => graph.sent.some((m) => m.subject === 'held 1') && graph.sent.some((m) => m.subject === 'held 2'), 30_000);
  const mine = graph.requests.slice(before).filter((q) => q.path.endsWith('/sendMail'));
  const throttledAt = mine.find((q) => q.status === 429)!.at;
  const after = mine.filter((q) => q.at > throttledAt);
  assert.deepEqual(after.map((q) => q.status), [202, 202], 'one 429, then each message once');
  for (const q of after) assert.ok(q.at - throttledAt >= 2900, `a request ${q.at - throttledAt} ms after a Retry-After of 3 s`);
  assert.deepEqual(badmail(relay), []);
});

test('554 5.2.0 SubmissionQuotaExceeded: the message waits (no bounce, no NDR); the console API shows the mailbox held and when it resumes', async () => {
  exo.rejectData = '554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process message due to a permanent exception with message [BeginDiagnosticData]';
  try {
    const webPort = await freePort();
    const relay = await relayWith(['upstreams:', smtpUpstream('o365'), FAST, 'web:', '  address: 127.0.0.1', `  port: ${webPort}`].join('\n'));
    await waitPort(webPort);
    const r = await swaks(relay, MAILBOX, 'alice@contoso.com', 'over quota');
    assert.equal(r.code, 0, r.out);
    let entry: QueueEntry | undefined;
    await waitUntil('the message held', async () => {
      entry = (await queueList(relay)).find((e) => /quota/.test(e.lastError ?? ''));
      return Boolean(entry);
    });
    assert.equal(entry!.state, 'deferred');
    assert.match(entry!.lastError!, /over Microsoft's sending quota/);
    const web = `http://127.0.0.1:${webPort}`;
    const cookie = ((await fetch(`${web}/api/session`)).headers.get('set-cookie') ?? '').split(';')[0];
    const { quotas } = await (await fetch(`${web}/api/quotas`, { headers: { cookie } })).json() as { quotas: { key: string; upstreams: string[]; resumesAt?: string; reason?: string; maxMessagesPerMinute?: number; maxRecipientsPerDay?: number }[] };
    const q = quotas.find((x) => x.key === `mailbox:${MAILBOX}`);
    assert.ok(q, JSON.stringify(quotas));
    assert.deepEqual(q.upstreams, ['o365']);
    assert.equal(q.maxMessagesPerMinute, 30);
    assert.equal(q.maxRecipientsPerDay, 10000);
    const resumes = Date.parse(q.resumesAt ?? '');
    assert.ok(resumes > Date.now() + 50 * 60_000, `resumes in about an hour: ${q.resumesAt}`);
    assert.match(q.reason ?? '', /SubmissionQuotaExceeded/);
    await sleep(1500);
    assert.deepEqual(badmail(relay), [], 'nothing bounced for a quota');
    assert.equal((await queueList(relay)).length, 1, 'no NDR queued');
    assert.match(relay.output(), /"level":(40|"warn")[^\n]*over Microsoft's sending quota|over Microsoft's sending quota[^\n]*none is bounced/);
  } finally {
    exo.rejectData = undefined;
  }
});

test('a parked upstream is released from the CLI (smarthost upstream release); parking and release are logged as warnings with the reason', async () => {
  exo.fullAccess.set('smtp-app', []);
  try {
    const relay = await relayWith(['upstreams:', smtpUpstream('o365'), FAST].join('\n'));
    const r = await swaks(relay, MAILBOX, 'alice@contoso.com', 'released from the cli');
    assert.equal(r.code, 0, r.out);
    await waitUntil('the message parked', async () => (await queueList(relay)).some((e) => e.waitingForUpstream === 'o365'));
    const parkedLine = relay.output().split('\n').find((l) => l.includes('upstream o365 parked'));
    assert.ok(parkedLine, relay.output().slice(-2000));
    assert.equal((JSON.parse(parkedLine) as { level: number }).level, 40, 'warning');
    assert.match(parkedLine, /5\.7\.3/);
    const unknown = await run(NODE, [CLI, 'upstream', 'release', 'nope', '--config', relay.configFile]);
    assert.notEqual(unknown.code, 0);
    assert.match(unknown.out, /no upstream or route named "nope"/);
    exo.fullAccess.set('smtp-app', [MAILBOX]);
    const rel = await run(NODE, [CLI, 'upstream', 'release', 'o365', '--config', relay.configFile]);
    assert.equal(rel.code, 0, rel.out);
    assert.match(rel.out, /released o365/);
    await waitUntil('delivery after the release', () => exo.received.some(subjectIs('released from the cli')));
    const releasedLine = relay.output().split('\n').find((l) => l.includes('upstream o365 released'));
    assert.ok(releasedLine);
    assert.equal((JSON.parse(releasedLine) as { level: number }).level, 40);
  } finally {
    exo.fullAccess.set('smtp-app', [MAILBOX]);
  }
});
