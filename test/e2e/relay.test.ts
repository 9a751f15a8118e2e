// The relay end to end: real clients (swaks, Python's smtplib, curl, raw sockets) → `smarthost serve`
// as a child process → a real SMTP upstream on loopback. Covers issue 3's "what it must show".
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync, copyFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { startRelay, freePort, CLI, NODE, type RelayProcess } from '../helpers/relay.ts';
import { startUpstream, type Upstream } from '../helpers/upstream.ts';
import { RawClient } from '../inbound/raw-client.ts';

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
});

function run(cmd: string, args: string[], input?: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, out: `${stdout}${stderr}` });
    });
    if (input !== undefined) child.stdin!.end(input);
  });
}

async function relayWith(yaml: string, opts: Parameters<typeof startRelay>[1] = {}): Promise<RelayProcess> {
  const r = await startRelay(yaml, opts);
  cleanups.push(async () => {
    await r.stop();
    rmSync(r.dir, { recursive: true, force: true });
  });
  return r;
}

async function upstreamWith(opts: Parameters<typeof startUpstream>[0] = {}, port = 0): Promise<Upstream> {
  const u = await startUpstream(opts, port);
  cleanups.push(() => u.stop());
  return u;
}

async function waitUntil(what: string, check: () => boolean, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`timed out waiting for ${what}`);
}

const files = (dir: string) => (existsSync(dir) ? readdirSync(dir) : []);

test('swaks → relay → STARTTLS + AUTH upstream: delivered with the envelope intact, verified certificate', async () => {
  const up = await upstreamWith({ tls: true, auth: { user: 'scanner@contoso.com', pass: 'Upstream-Pass1' } });
  const dir = (await import('node:fs')).mkdtempSync(path.join((await import('node:os')).tmpdir(), 'sh-e2e-'));
  writeFileSync(path.join(dir, 'upstream-ca.pem'), up.ca!);
  const relay = await relayWith([
    'upstreams:',
    '  - name: o365',
    `    url: smtp+starttls://localhost:${up.port}`,
    '    username: scanner@contoso.com',
    '    password: { env: TEST_UPSTREAM_PASSWORD }',
    `    ca: ${path.join(dir, 'upstream-ca.pem')}`,
    'delivery:',
    '  scanInterval: 200ms',
  ].join('\n'), { dir, env: { TEST_UPSTREAM_PASSWORD: 'Upstream-Pass1' } });
  const r = await run('swaks', ['--server', `127.0.0.1:${relay.port}`, '--from', 'scanner@contoso.com', '--to', 'boss@fabrikam.example', '--h-Subject', 'Scan 0001', '--body', 'scanned page']);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /250 2\.0\.0 .*queued as/);
  const [msg] = await up.waitFor(1);
  assert.equal(msg.mailFrom, 'scanner@contoso.com');
  assert.deepEqual(msg.recipients, ['boss@fabrikam.example']);
  assert.equal(msg.secure, true, 'upstream leg used STARTTLS');
  assert.equal(msg.user, 'scanner@contoso.com');
  assert.match(msg.raw.toString(), /Subject: Scan 0001/);
  assert.match(msg.raw.toString(), /^Received: from /m);
  assert.ok(!relay.output().includes('Upstream-Pass1'), 'the password never reaches the log');
});

test('Python smtplib and curl relay through it; a client outside the connection list is refused at connect', async () => {
  const up = await upstreamWith();
  const relay = await relayWith([
    'access:',
    '  connection: { mode: all-except, list: [127.0.0.99] }',
    'upstreams:',
    `  - { name: sink, url: "smtp://127.0.0.1:${up.port}" }`,
    'delivery: { scanInterval: 200ms }',
  ].join('\n'));
  const py = await run('/usr/bin/python3', ['-c', [
    'import smtplib, sys',
    `s = smtplib.SMTP("127.0.0.1", ${relay.port}, timeout=20)`,
    's.ehlo("erp.local")',
    's.sendmail("erp@contoso.com", ["a@fabrikam.example", "b@fabrikam.example"], "Subject: invoice\\r\\n\\r\\nfrom python\\r\\n")',
    's.quit()',
  ].join('\n')]);
  assert.equal(py.code, 0, py.out);
  const mail = path.join(relay.dir, 'curl.eml');
  writeFileSync(mail, 'Subject: from curl\r\n\r\nhello\r\n');
  const curl = await run('curl', ['-sS', `smtp://127.0.0.1:${relay.port}`, '--mail-from', 'alarm@contoso.com', '--mail-rcpt', 'ops@fabrikam.example', '-T', mail]);
  assert.equal(curl.code, 0, curl.out);
  const got = await up.waitFor(2);
  assert.deepEqual(got.map((m) => m.recipients.join(',')).sort(), ['a@fabrikam.example,b@fabrikam.example', 'ops@fabrikam.example']);
  const c = await RawClient.connect(relay.port, { localAddress: '127.0.0.99' });
  const banner = await c.reply();
  assert.equal(banner.code, 554);
  assert.match(banner.text, /5\.7\.1/);
  c.close();
});

test('relay refused for an unlisted client, including percent hack and source route spellings', async () => {
  const up = await upstreamWith();
  const relay = await relayWith([
    'access:',
    '  relay: { mode: only, list: [127.0.0.1] }',
    '  localDomains: [contoso.com]',
    'upstreams:',
    `  - { name: sink, url: "smtp://127.0.0.1:${up.port}" }`,
  ].join('\n'));
  const c = await RawClient.connect(relay.port, { localAddress: '127.0.0.7' });
  await c.reply();
  await c.cmd('EHLO outsider');
  assert.equal((await c.cmd('MAIL FROM:<x@outside.example>')).code, 250);
  for (const rcpt of ['<victim@gmail.com>', '<victim%gmail.com@contoso.com>', '<@contoso.com:victim@gmail.com>', '<gmail.com!victim@contoso.com>', '<victim@contoso.com.evil.example>']) {
    const r = await c.cmd(`RCPT TO:${rcpt}`);
    assert.ok(r.code >= 500 && r.code < 600, `${rcpt} refused (got ${r.code} ${r.text})`);
  }
  assert.equal((await c.cmd('RCPT TO:<frontdesk@contoso.com>')).code, 250, 'local domain still accepted');
  c.close();
});

test('upstream down, then up: delivered by the retry; a SIGKILL after 250 loses nothing', async () => {
  const upPort = await freePort();
  const yaml = [
    'upstreams:',
    `  - { name: sink, url: "smtp://127.0.0.1:${upPort}" }`,
    'delivery: { retry: [1s], scanInterval: 200ms }',
  ].join('\n');
  let relay = await startRelay(yaml);
  cleanups.push(async () => { await relay.stop(); rmSync(relay.dir, { recursive: true, force: true }); });
  const r = await run('swaks', ['--server', `127.0.0.1:${relay.port}`, '--from', 'scan@contoso.com', '--to', 'x@fabrikam.example', '--h-Subject', 'survives kill']);
  assert.equal(r.code, 0, r.out);
  await waitUntil('a deferred attempt', () => files(path.join(relay.mailroot, 'deferred')).length > 0 || files(path.join(relay.mailroot, 'incoming')).length > 0);
  await relay.kill();
  const dir = relay.dir;
  const up = await upstreamWith({}, upPort);
  relay = await startRelay(yaml, { dir, port: relay.port });
  const [msg] = await up.waitFor(1, 30_000);
  assert.match(msg.raw.toString(), /Subject: survives kill/);
  await waitUntil('queue empty', () => ['incoming', 'active', 'deferred'].every((f) => files(path.join(relay.mailroot, f)).length === 0));
});

test('upstream 5xx: .BAD + .BDR in badmail, DSN to the sender; mixed recipients each get their own fate', async () => {
  const up = await upstreamWith({
    onRcpt: (a) => (a.startsWith('gone') ? { code: 550, message: '5.1.1 User unknown' } : a.startsWith('sendas') ? { code: 550, message: '5.7.60 SMTP; Client does not have permissions to send as this sender' } : undefined),
  });
  const relay = await relayWith([
    'upstreams:',
    `  - { name: sink, url: "smtp://127.0.0.1:${up.port}" }`,
    'delivery: { scanInterval: 200ms }',
  ].join('\n'));
  const r = await run('swaks', ['--server', `127.0.0.1:${relay.port}`, '--from', 'invoices@contoso.com', '--to', 'ok@fabrikam.example,gone@fabrikam.example', '--h-Subject', 'Invoice 42']);
  assert.equal(r.code, 0, r.out);
  // the good recipient's copy, then the DSN to invoices@contoso.com
  const got = await up.waitFor(2);
  const original = got.find((m) => m.recipients.includes('ok@fabrikam.example'))!;
  assert.deepEqual(original.recipients, ['ok@fabrikam.example']);
  const dsn = got.find((m) => m.mailFrom === '')!;
  assert.ok(dsn, 'a DSN with the null sender');
  assert.deepEqual(dsn.recipients, ['invoices@contoso.com']);
  assert.match(dsn.raw.toString(), /multipart\/report; ?report-type="?delivery-status/i);
  assert.match(dsn.raw.toString(), /Final-Recipient: rfc822; ?gone@fabrikam\.example/i);
  assert.match(dsn.raw.toString(), /Action: failed/);
  await waitUntil('badmail files', () => files(path.join(relay.mailroot, 'badmail')).some((f) => f.endsWith('.BDR')));
  const bad = files(path.join(relay.mailroot, 'badmail'));
  const bdr = readFileSync(path.join(relay.mailroot, 'badmail', bad.find((f) => f.endsWith('.BDR'))!), 'utf8');
  assert.match(bdr, /gone@fabrikam\.example/);
  assert.match(bdr, /550 5\.1\.1 User unknown/);
  assert.ok(!bdr.includes('ok@fabrikam.example') || /delivered/i.test(bdr), 'the delivered recipient is not reported as failed');
  assert.ok(bad.some((f) => f.endsWith('.BAD')));
  // send-as refusal: the reason says what to do, in words
  await run('swaks', ['--server', `127.0.0.1:${relay.port}`, '--from', 'oliver@contoso.com', '--to', 'sendas@fabrikam.example', '--h-Subject', 'Invoice 43']);
  await waitUntil('send-as BDR', () => files(path.join(relay.mailroot, 'badmail')).filter((f) => f.endsWith('.BDR')).length >= 2);
  const texts = files(path.join(relay.mailroot, 'badmail')).filter((f) => f.endsWith('.BDR')).map((f) => readFileSync(path.join(relay.mailroot, 'badmail', f), 'utf8'));
  assert.ok(texts.some((t) => /Send As/i.test(t) && /5\.7\.60/.test(t)), 'send-as reason explains the fix');
});

test('pickup: each format is delivered, and a .BAD copied back into pickup is sent again', async () => {
  const up = await upstreamWith({ onRcpt: (a) => (a.startsWith('retry-me') && !retryFixed ? { code: 550, message: '5.1.1 not yet' } : undefined) });
  let retryFixed = false;
  const relay = await relayWith([
    'upstreams:',
    `  - { name: sink, url: "smtp://127.0.0.1:${up.port}" }`,
    'delivery: { scanInterval: 200ms }',
    'pickup: { interval: 300ms, settle: 300ms }',
    'ndr: { to: off }',
  ].join('\n'));
  const pickup = path.join(relay.mailroot, 'pickup');
  await waitUntil('pickup folder', () => existsSync(pickup));
  // the seed's Email.txt
  writeFileSync(path.join(pickup, 'Email.txt'), 'FROM: scanner@contoso.com\nTO: seed@fabrikam.example\nSUBJECT: Test from the pickup folder\n\nThis is a test.\n');
  // .NET SmtpClient / IIS format
  writeFileSync(path.join(pickup, 'dotnet.eml'), 'X-Sender: app@contoso.com\r\nX-Receiver: envelope@fabrikam.example\r\nFrom: app@contoso.com\r\nTo: header-only@fabrikam.example\r\nSubject: dotnet\r\n\r\nbody\r\n');
  // plain RFC 5322 with Bcc
  writeFileSync(path.join(pickup, 'plain.eml'), 'From: erp@contoso.com\r\nTo: to@fabrikam.example\r\nBcc: hidden@fabrikam.example\r\nSubject: plain\r\n\r\nbody\r\n');
  const got = await up.waitFor(3);
  const bySubject = (s: string) => got.find((m) => m.raw.toString().toLowerCase().includes(`subject: ${s}`.toLowerCase()))!;
  assert.deepEqual(bySubject('Test from the pickup folder').recipients, ['seed@fabrikam.example']);
  assert.deepEqual(bySubject('dotnet').recipients, ['envelope@fabrikam.example']);
  assert.equal(bySubject('dotnet').mailFrom, 'app@contoso.com');
  const plain = bySubject('plain');
  assert.deepEqual(plain.recipients.sort(), ['hidden@fabrikam.example', 'to@fabrikam.example']);
  assert.ok(!/^Bcc:/im.test(plain.raw.toString()), 'Bcc removed before sending');
  // a permanent failure, then the admin's fix: copy the .BAD back into pickup
  writeFileSync(path.join(pickup, 'retry.eml'), 'From: erp@contoso.com\r\nTo: retry-me@fabrikam.example\r\nSubject: second chance\r\n\r\nbody\r\n');
  const badmail = path.join(relay.mailroot, 'badmail');
  await waitUntil('.BAD written', () => files(badmail).some((f) => f.endsWith('.BAD')));
  retryFixed = true;
  const bad = files(badmail).find((f) => f.endsWith('.BAD'))!;
  copyFileSync(path.join(badmail, bad), path.join(pickup, bad));
  const again = await up.waitFor(4);
  const resent = again.find((m) => m.raw.toString().includes('Subject: second chance'))!;
  assert.deepEqual(resent.recipients, ['retry-me@fabrikam.example']);
  assert.equal(resent.mailFrom, 'erp@contoso.com');
});

test('a smuggling payload stays one message; bare LF is normalised to CRLF upstream', async () => {
  const up = await upstreamWith();
  const relay = await relayWith([
    'upstreams:',
    `  - { name: sink, url: "smtp://127.0.0.1:${up.port}" }`,
    'delivery: { scanInterval: 200ms }',
  ].join('\n'));
  const c = await RawClient.connect(relay.port);
  await c.reply();
  await c.cmd('EHLO smuggler');
  await c.cmd('MAIL FROM:<a@contoso.com>');
  await c.cmd('RCPT TO:<b@fabrikam.example>');
  assert.equal((await c.cmd('DATA')).code, 354);
  c.write('Subject: smuggle\r\n\r\nfirst\n.\r\nMAIL FROM:<ceo@contoso.com>\r\nRCPT TO:<victim@fabrikam.example>\r\nDATA\r\nSubject: smuggled\r\n\r\nevil\r\n');
  const end = await c.cmd('.');
  assert.equal(end.code, 250);
  await c.cmd('QUIT');
  c.close();
  const [msg] = await up.waitFor(1);
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(up.messages.length, 1, 'exactly one message reached the upstream');
  assert.deepEqual(msg.recipients, ['b@fabrikam.example']);
  const raw = msg.raw.toString('latin1');
  assert.ok(raw.includes('MAIL FROM:<ceo@contoso.com>'), 'the smuggled commands stayed inside the message body');
  assert.ok(!/[^\r]\n/.test(raw), 'every line ends in CRLF upstream');
});

test('a config error names its file and line, for config check and for serve', async () => {
  const dir = (await import('node:fs')).mkdtempSync(path.join((await import('node:os')).tmpdir(), 'sh-cfg-'));
  cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'smarthost.yaml');
  writeFileSync(file, 'listen:\n  - port: 2525\naccess:\n  relay:\n    mode: everyone\n');
  for (const args of [['config', 'check', file], ['serve', '--config', file]]) {
    const r = await run(NODE, [CLI, ...args]);
    assert.equal(r.code, 2, r.out);
    assert.match(r.out, new RegExp(`${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:5:11: access\\.relay\\.mode: expected "only" or "all-except", got "everyone"`));
  }
});

test('SIGHUP reloads the config: an open session goes on, new upstream and relay rules apply, queued mail stays', async () => {
  const a = await upstreamWith();
  const b = await upstreamWith();
  const yaml = (up: number, relayList: string) => [
    'access:',
    `  relay: { mode: only, list: [${relayList}] }`,
    'upstreams:',
    `  - { name: main, url: "smtp://127.0.0.1:${up}" }`,
    'delivery: { scanInterval: 200ms }',
  ].join('\n');
  const relay = await relayWith(yaml(a.port, '127.0.0.1'));
  const open = await RawClient.connect(relay.port);
  await open.reply();
  assert.equal((await open.cmd('EHLO before-reload')).code, 250);
  // 127.0.0.8 may relay after the reload; mail now goes to upstream b.
  const text = readFileSync(relay.configFile, 'utf8').replace(yaml(a.port, '127.0.0.1'), yaml(b.port, '127.0.0.1, 127.0.0.8'));
  writeFileSync(relay.configFile, text);
  relay.child.kill('SIGHUP');
  await waitUntil('reload logged', () => /configuration reloaded/.test(relay.output()));
  // the session opened before the reload is still served
  assert.equal((await open.cmd('MAIL FROM:<old@contoso.com>')).code, 250);
  assert.equal((await open.cmd('RCPT TO:<x@fabrikam.example>')).code, 250);
  await open.cmd('QUIT');
  open.close();
  const r = await run('swaks', ['--server', `127.0.0.1:${relay.port}`, '--local-interface', '127.0.0.8', '--from', 'new@contoso.com', '--to', 'y@fabrikam.example', '--h-Subject', 'after reload']);
  assert.equal(r.code, 0, r.out);
  const [msg] = await b.waitFor(1);
  assert.match(msg.raw.toString(), /Subject: after reload/);
  assert.equal(a.messages.length, 0);
  // a broken edit is refused and the running config stays
  writeFileSync(relay.configFile, `${text}\nlimits: { maxRecipients: many }\n`);
  relay.child.kill('SIGHUP');
  await waitUntil('reload refused', () => /reload refused/.test(relay.output()));
  assert.match(relay.output(), /maxRecipients/);
  const again = await run('swaks', ['--server', `127.0.0.1:${relay.port}`, '--local-interface', '127.0.0.8', '--from', 'new@contoso.com', '--to', 'z@fabrikam.example']);
  assert.equal(again.code, 0, again.out);
  await b.waitFor(2);
});

test('SIGHUP with a changed listen address: the relay says it needs a restart for that, and keeps serving where it was', async () => {
  const relay = await relayWith('limits: { maxRecipients: 100 }');
  const moved = await freePort();
  const text = readFileSync(relay.configFile, 'utf8');
  writeFileSync(relay.configFile, text.replace(`port: ${relay.port}`, `port: ${moved}`).replace('maxRecipients: 100', 'maxRecipients: 1'));
  relay.child.kill('SIGHUP');
  await waitUntil('reload logged', () => /configuration reloaded/.test(relay.output()));
  await waitUntil('restart warning', () => /changes to listen apply only when smarthost is restarted/.test(relay.output()));
  // the old address still serves, with the new limits; nothing listens on the new one yet
  const c = await RawClient.connect(relay.port);
  await c.reply();
  await c.cmd('EHLO after-reload');
  await c.cmd('MAIL FROM:<a@contoso.com>');
  assert.equal((await c.cmd('RCPT TO:<b@contoso.com>')).code, 250);
  assert.equal((await c.cmd('RCPT TO:<c@contoso.com>')).code, 452, 'the new recipient limit applies');
  c.close();
  await assert.rejects(RawClient.connect(moved));
});
