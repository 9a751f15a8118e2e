import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SMTPServer } from 'smtp-server';
import nodemailer from 'nodemailer';
import { simpleParser } from 'mailparser';
import { parseConfigText } from '../../src/config/load.ts';
import { applySenderMode, createSenderCheck, senderRouteFor } from '../../src/inbound/sender-policy.ts';

const config = parseConfigText(`
upstreams:
  - name: o365
    url: smtp+starttls://smtp.office365.com:587
    auth: xoauth2
    mailbox: scanner@contoso.com
    sendAs: [invoicing@contoso.com]
    oauth: { tenant: contoso.onmicrosoft.com, clientId: app, clientSecret: s }
  - name: relay
    url: connector://contoso.com
    sendAs: ['*@contoso.com']
senders:
  - clients: [10.1.0.0/16]
    allow: [scanner@contoso.com, invoicing@contoso.com, ceo@contoso.com]
  - users: [erp]
    allow: ['*@contoso.com']
    upstream: relay
  - clients: [10.9.0.0/16]
    allow: ['*']
    mode: rewrite
    rewriteTo: scanner@contoso.com
  - clients: [10.8.0.0/16]
    allow: [boss@contoso.com]
    mode: on-behalf
`, '/tmp/senders.yaml');

test("client rules and the upstream mailbox's Send As list decide, with a 5.7.60 reply naming the address and the fix", () => {
  const check = createSenderCheck(config);
  assert.equal(check({ clientAddress: '10.1.2.3', mailFrom: 'scanner@contoso.com', stage: 'mail' }).verdict, 'accept');
  assert.equal(check({ clientAddress: '10.1.2.3', mailFrom: 'Invoicing@Contoso.com', stage: 'mail' }).verdict, 'accept');
  // allowed for the client, but the mailbox has no Send As on it
  const ceo = check({ clientAddress: '10.1.2.3', mailFrom: 'ceo@contoso.com', stage: 'mail' });
  assert.equal(ceo.verdict, 'reject');
  assert.ok(ceo.verdict === 'reject' && ceo.code === 550 && ceo.status === '5.7.60');
  assert.match((ceo as { message: string }).message, /<ceo@contoso\.com>.*no Send As.*Add-RecipientPermission ceo@contoso\.com -Trustee scanner@contoso\.com/);
  // not allowed for the client at all
  const other = check({ clientAddress: '10.1.2.3', mailFrom: 'someone@gmail.com', stage: 'mail' });
  assert.match((other as { message: string }).message, /<someone@gmail\.com>.*client 10\.1\.2\.3 may not send as it \(senders rule 1/);
  // the From header is checked at end of data even when the envelope passed
  const hdr = check({ clientAddress: '10.1.2.3', mailFrom: 'scanner@contoso.com', headerFrom: 'ceo@contoso.com', stage: 'data' });
  assert.equal(hdr.verdict, 'reject');
  // authenticated user rule routed to the connector: any contoso.com address, nothing else
  assert.equal(check({ clientAddress: '192.0.2.1', user: 'ERP', mailFrom: 'ceo@contoso.com', stage: 'mail' }).verdict, 'accept');
  assert.equal(check({ clientAddress: '192.0.2.1', user: 'erp', mailFrom: 'x@fabrikam.com', stage: 'mail' }).verdict, 'reject');
  // rewrite mode: any sender, it will be replaced
  assert.equal(check({ clientAddress: '10.9.0.5', mailFrom: 'printer@local', headerFrom: 'root@printer', stage: 'data' }).verdict, 'accept');
  // no rule: still checked against the default (first) upstream's mailbox; the null sender is not checked
  assert.equal(check({ clientAddress: '127.0.0.1', mailFrom: 'nobody@contoso.com', stage: 'mail' }).verdict, 'reject');
  assert.equal(check({ clientAddress: '127.0.0.1', mailFrom: '', stage: 'mail' }).verdict, 'none');
  // on-behalf: the reply names the Send on Behalf grant
  const ob = check({ clientAddress: '10.8.0.1', mailFrom: 'boss@contoso.com', stage: 'mail' });
  assert.match((ob as { message: string }).message, /Send on Behalf.*GrantSendOnBehalfTo scanner@contoso\.com/);
});

test('a disallowed sender is refused at SMTP time with 550 5.7.60, before any data', async () => {
  const check = createSenderCheck(config);
  let received = 0;
  const server = new SMTPServer({
    authOptional: true, disabledCommands: ['STARTTLS'], logger: false,
    onMailFrom(address, session, cb) {
      const d = check({ clientAddress: session.remoteAddress, mailFrom: address.address, stage: 'mail' });
      if (d.verdict === 'reject') return cb(Object.assign(new Error(`${d.status} ${d.message}`), { responseCode: d.code }));
      cb();
    },
    onData(stream, _s, cb) { stream.resume(); stream.on('end', () => { received++; cb(); }); },
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.server.address() as { port: number }).port;
  try {
    const tx = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true });
    await assert.rejects(tx.sendMail({ from: 'ceo@contoso.com', to: 'a@example.org', text: 'x' }), (e: { responseCode?: number; response?: string }) => {
      assert.equal(e.responseCode, 550);
      assert.match(e.response ?? '', /^550 5\.7\.60 Sender <ceo@contoso\.com> refused: .*Send As/);
      return true;
    });
    await tx.sendMail({ from: 'scanner@contoso.com', to: 'a@example.org', text: 'x' });
    assert.equal(received, 1);
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
  }
});

const original = Buffer.from([
  'From: "Scanner 2nd floor" <printer@local.lan>',
  'To: alice@contoso.com',
  'Subject: Scan',
  'Sender: old@local.lan',
  'Message-ID: <1@local>',
  '',
  'body line',
  'From: not a header',
  '',
].join('\r\n'));

test('rewrite: From and envelope become the fixed address, the original From goes to Reply-To, body untouched', async () => {
  const route = senderRouteFor(config, { clientAddress: '10.9.1.1' });
  assert.deepEqual(route.spec, { mode: 'rewrite', address: 'scanner@contoso.com' });
  const out = applySenderMode(original, { mailFrom: 'printer@local.lan' }, route.spec);
  assert.equal(out.mailFrom, 'scanner@contoso.com');
  const m = await simpleParser(out.message);
  assert.deepEqual(m.from?.value, [{ address: 'scanner@contoso.com', name: 'Scanner 2nd floor' }]);
  assert.equal(m.replyTo?.value[0].address, 'printer@local.lan');
  assert.equal(m.headers.get('sender'), undefined);
  assert.ok(out.message.toString().endsWith('\r\n\r\nbody line\r\nFrom: not a header\r\n'));
  // an explicit Reply-To is kept; the null sender stays null
  const withReply = Buffer.from('From: a@b.c\r\nReply-To: desk@contoso.com\r\n\r\nx\r\n');
  const r2 = applySenderMode(withReply, { mailFrom: '' }, { mode: 'rewrite', address: 'scanner@contoso.com' });
  assert.equal(r2.mailFrom, '');
  assert.match(r2.message.toString(), /^From: <scanner@contoso\.com>\r\nReply-To: desk@contoso\.com\r\n\r\nx/);
});

test('on-behalf: From kept, Sender (and the envelope) set to the upstream mailbox', async () => {
  const route = senderRouteFor(config, { clientAddress: '10.8.3.3' });
  assert.deepEqual(route.spec, { mode: 'on-behalf', mailbox: 'scanner@contoso.com' });
  const out = applySenderMode(original, { mailFrom: 'printer@local.lan' }, route.spec);
  assert.equal(out.mailFrom, 'scanner@contoso.com');
  const m = await simpleParser(out.message);
  assert.equal(m.from?.value[0].address, 'printer@local.lan');
  assert.equal((m.headers.get('sender') as { value: { address: string }[] }).value[0].address, 'scanner@contoso.com');
  assert.equal(m.replyTo, undefined);
  assert.equal(out.message.toString().match(/^Sender:/gm)?.length, 1);
  // send-as leaves the bytes alone
  const same = applySenderMode(original, { mailFrom: 'x@y' }, { mode: 'send-as' });
  assert.equal(same.message, original);
});

test("smarthost's own listener refuses a disallowed sender with 550 5.7.60 at MAIL FROM and on the From header (swaks)", async () => {
  const { execFile } = await import('node:child_process');
  const { startRelay } = await import('./setup.ts');
  const yaml = `upstreams:
  - name: o365
    url: smtp+starttls://smtp.office365.com:587
    auth: xoauth2
    mailbox: scanner@contoso.com
    sendAs: [invoicing@contoso.com]
    oauth: { tenant: contoso.onmicrosoft.com, clientId: app, clientSecret: s }
senders:
  - clients: [127.0.0.0/8]
    allow: ['*@contoso.com']
`;
  const relay = await startRelay(yaml, { senderCheck: createSenderCheck(parseConfigText(yaml, '/tmp/s.yaml')) });
  try {
    // async: the relay runs in this process, a synchronous spawn would stall it
    const swaks = (from: string, headerFrom: string) => new Promise<{ status: number; stdout: string }>((resolve) => {
      execFile('swaks', ['--server', `127.0.0.1:${relay.port}`, '--from', from, '--to', 'alice@contoso.com', '--header', `From: ${headerFrom}`, '--body', 'scan', '--timeout', '10'], { encoding: 'utf8', timeout: 20_000 }, (err, stdout) => {
        resolve({ status: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout });
      });
    });
    const envelope = await swaks('ceo@contoso.com', 'ceo@contoso.com');
    assert.match(envelope.stdout, /<\*\* 550 5\.7\.60 Sender <ceo@contoso\.com> refused: upstream o365 \(mailbox scanner@contoso\.com\) has no Send As/);
    const header = await swaks('scanner@contoso.com', 'Boss <ceo@contoso.com>');
    assert.match(header.stdout, /<\*\* 550 5\.7\.60 Sender <ceo@contoso\.com> refused/);
    const foreign = await swaks('x@gmail.com', 'x@gmail.com');
    assert.match(foreign.stdout, /<\*\* 550 5\.7\.60 Sender <x@gmail\.com> refused: client 127\.0\.0\.1 may not send as it/);
    assert.equal(relay.queue.messages.length, 0, 'nothing refused was queued');
    const ok = await swaks('invoicing@contoso.com', 'Invoicing <invoicing@contoso.com>');
    assert.equal(ok.status, 0, ok.stdout);
    assert.equal(relay.queue.messages.length, 1);
  } finally {
    await relay.close();
  }
});
