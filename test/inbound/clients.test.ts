// The listener against real SMTP clients: swaks, Python's smtplib and curl, on loopback.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { hashPassword } from '../../src/core/password.ts';
import { startRelay, type TestRelay } from './setup.ts';
import { RawClient } from './raw-client.ts';

interface Run {
  code: number;
  out: string;
}

function run(cmd: string, args: string[], input?: string): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, out: `${stdout}${stderr}` });
    });
    if (input !== undefined) child.stdin!.end(input);
  });
}

let dir: string;
let relay: TestRelay;

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'smarthost-clients-'));
  writeFileSync(path.join(dir, 'users.yaml'), `scanner: ${await hashPassword('s3cret-Pass')}\n`);
  relay = await startRelay([
    'access:',
    '  connection:',
    '    mode: all-except',
    '    list: [127.0.0.66]',
    '  relay:',
    '    mode: only',
    '    list: [127.0.0.1]',
    '  localDomains: [example.org]',
    'auth:',
    '  enabled: true',
    '  usersFile: users.yaml',
    '  maxFailures: 3',
    '  failureDelay: 200ms',
    '',
  ].join('\n'), { dir });
});

after(async () => {
  await relay.close();
  rmSync(dir, { recursive: true, force: true });
});

const server = () => `127.0.0.1:${relay.port}`;

test('swaks: a plain message from a relay-listed client is queued with its envelope', async () => {
  const before = relay.queue.messages.length;
  const r = await run('swaks', ['--server', server(), '--from', 'printer@example.org', '--to', 'someone@gmail.com', '--h-Subject', 'swaks plain', '--body', 'hello from swaks']);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /<- {2}250 2\.0\.0 Ok: queued as \d{8}T\d{6}Z-[0-9a-f]{10}-[0-9a-f]{4}\b/);
  const m = relay.queue.messages[before];
  assert.equal(m.envelope.mailFrom, 'printer@example.org');
  assert.deepEqual(m.envelope.recipients, ['someone@gmail.com']);
  assert.equal(m.envelope.subject, 'swaks plain');
});

test('swaks from a loopback address outside the connection list is refused at connect', async () => {
  const r = await run('swaks', ['--server', server(), '--local-interface', '127.0.0.66', '--from', 'a@example.org', '--to', 'b@example.org']);
  assert.notEqual(r.code, 0);
  assert.match(r.out, /554 5\.7\.1 Access denied/);
});

test('swaks from an unlisted client: relay to a foreign domain refused at RCPT, percent hack and source route too', async () => {
  for (const to of ['victim@gmail.com', 'victim%gmail.com@example.org', '@example.org:victim@gmail.com']) {
    const r = await run('swaks', ['--server', server(), '--local-interface', '127.0.0.7', '--from', 'a@example.org', '--to', to, '--quit-after', 'RCPT']);
    assert.notEqual(r.code, 0, `${to} was accepted:\n${r.out}`);
    assert.match(r.out, /554 5\.7\.1 Relay access denied/, to);
  }
  const local = await run('swaks', ['--server', server(), '--local-interface', '127.0.0.7', '--from', 'a@example.org', '--to', 'boss@example.org']);
  assert.equal(local.code, 0, local.out);
});

test('swaks STARTTLS + AUTH LOGIN: an authenticated client may relay from an unlisted address', async () => {
  const before = relay.queue.messages.length;
  const r = await run('swaks', ['--server', server(), '--local-interface', '127.0.0.8', '--tls', '--auth', 'LOGIN', '--auth-user', 'scanner', '--auth-password', 's3cret-Pass', '--from', 'scanner@example.org', '--to', 'someone@gmail.com']);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /235 2\.7\.0 Authentication successful/);
  const m = relay.queue.messages[before];
  assert.equal(m.envelope.client.user, 'scanner');
  assert.equal(m.envelope.client.tls, true);
  assert.match(m.content.toString(), /with ESMTPSA id/);
  await new Promise((res) => setTimeout(res, 100));
  assert.ok(!JSON.stringify(relay.logs).includes('s3cret-Pass'), 'the password must never be logged');
});

test('AUTH is not announced before STARTTLS and refused there (538); a wrong password gets 535 5.7.8 after a delay', async () => {
  const plain = await run('swaks', ['--server', server(), '--local-interface', '127.0.0.9', '--auth', 'PLAIN', '--auth-user', 'scanner', '--auth-password', 's3cret-Pass', '--from', 'a@example.org', '--to', 'b@example.org']);
  assert.notEqual(plain.code, 0);
  assert.doesNotMatch(plain.out, /250[ -]AUTH/, 'a plain-text EHLO must not announce AUTH it cannot use');
  assert.match(plain.out, /250[ -]STARTTLS/);
  const raw = await RawClient.connect(relay.port, { localAddress: '127.0.0.9' });
  await raw.reply();
  await raw.cmd('EHLO device.test');
  assert.equal((await raw.cmd(`AUTH PLAIN ${Buffer.from('\0scanner\0s3cret-Pass').toString('base64')}`)).code, 538);
  raw.close();
  const t0 = Date.now();
  const wrong = await run('swaks', ['--server', server(), '--local-interface', '127.0.0.10', '--tls', '--auth', 'PLAIN', '--auth-user', 'scanner', '--auth-password', 'wrong', '--from', 'a@example.org', '--to', 'b@example.org']);
  assert.notEqual(wrong.code, 0);
  assert.match(wrong.out, /535 5\.7\.8 /);
  assert.ok(Date.now() - t0 >= 200, 'the failure was not delayed');
});

async function authOverTls(localAddress: string, password: string): Promise<{ client: RawClient; code: number; text: string }> {
  const c = await RawClient.connect(relay.port, { localAddress });
  await c.reply();
  await c.cmd('EHLO lockout.test');
  assert.equal((await c.cmd('STARTTLS')).code, 220);
  await c.upgrade();
  await c.cmd('EHLO lockout.test');
  const r = await c.cmd(`AUTH PLAIN ${Buffer.from(`\0scanner\0${password}`).toString('base64')}`, 10_000);
  return { client: c, code: r.code, text: r.text };
}

test('failed AUTH is slowed down (doubling), cut off with 421 4.7.0, and remembered for the address across connections', async () => {
  const c = await RawClient.connect(relay.port, { localAddress: '127.0.0.20' });
  await c.reply();
  await c.cmd('EHLO lockout.test');
  await c.cmd('STARTTLS');
  await c.upgrade();
  await c.cmd('EHLO lockout.test');
  const wrong = `AUTH PLAIN ${Buffer.from('\0scanner\0nope').toString('base64')}`;
  const t1 = Date.now();
  assert.equal((await c.cmd(wrong, 10_000)).code, 535);
  const d1 = Date.now() - t1;
  const t2 = Date.now();
  assert.equal((await c.cmd(wrong, 10_000)).code, 535);
  const d2 = Date.now() - t2;
  assert.ok(d1 >= 190 && d2 >= 390, `delays ${d1} ms then ${d2} ms should double from 200 ms`);
  const third = await c.cmd(wrong, 10_000);
  assert.equal(third.code, 421);
  assert.match(third.text, /^4\.7\.0 /);
  assert.ok(await c.waitClosed());
  // A new connection from the same address is refused even with the right password.
  const again = await authOverTls('127.0.0.20', 's3cret-Pass');
  assert.equal(again.code, 421);
  again.client.close();
  // Another address is not affected.
  const other = await authOverTls('127.0.0.21', 's3cret-Pass');
  assert.equal(other.code, 235);
  other.client.close();
});

test('Python smtplib: STARTTLS, login and sendmail', async () => {
  const before = relay.queue.messages.length;
  const script = [
    'import smtplib, ssl, sys',
    'ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE',
    `s = smtplib.SMTP('127.0.0.1', ${relay.port}, source_address=('127.0.0.30', 0), timeout=20)`,
    's.ehlo("python.test"); s.starttls(context=ctx); s.ehlo("python.test")',
    's.login("scanner", "s3cret-Pass")',
    'msg = "From: scanner@example.org\\r\\nTo: far@gmail.com\\r\\nSubject: from python\\r\\n\\r\\nhello\\r\\n"',
    'print(s.sendmail("scanner@example.org", ["far@gmail.com"], msg))',
    's.quit()',
  ].join('\n');
  const r = await run('python3', ['-c', script]);
  assert.equal(r.code, 0, r.out);
  const m = relay.queue.messages[before];
  assert.equal(m.envelope.subject, 'from python');
  assert.equal(m.envelope.client.user, 'scanner');
});

test('curl: plain SMTP upload from a listed client, and STARTTLS + AUTH from an unlisted one', async () => {
  const file = path.join(dir, 'curl-message.txt');
  writeFileSync(file, 'From: a@example.org\r\nTo: b@gmail.com\r\nSubject: from curl\r\n\r\nbody line\r\n');
  const before = relay.queue.messages.length;
  const plain = await run('curl', ['-sS', `smtp://${server()}`, '--mail-from', 'a@example.org', '--mail-rcpt', 'b@gmail.com', '-T', file]);
  assert.equal(plain.code, 0, plain.out);
  const tlsAuth = await run('curl', ['-sS', '--interface', '127.0.0.31', `smtp://${server()}`, '--ssl-reqd', '-k', '--user', 'scanner:s3cret-Pass', '--mail-from', 'a@example.org', '--mail-rcpt', 'b@gmail.com', '-T', file]);
  assert.equal(tlsAuth.code, 0, tlsAuth.out);
  const refused = await run('curl', ['-sS', '--interface', '127.0.0.31', `smtp://${server()}`, '--mail-from', 'a@example.org', '--mail-rcpt', 'b@gmail.com', '-T', file]);
  assert.notEqual(refused.code, 0, 'an unlisted, unauthenticated client must not relay');
  assert.equal(relay.queue.messages.length, before + 2);
  assert.equal(relay.queue.messages[before].envelope.subject, 'from curl');
  assert.equal(relay.queue.messages[before + 1].envelope.client.user, 'scanner');
});
