// Every refusal a client hears is reported to onRefusal with a reason an admin can act on, the
// reply as sent and who was refused — driven by swaks on loopback (the Refusals page and
// smarthost_refusals_total are built on these). A message that is accepted reports nothing.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { hashPassword } from '../../src/core/password.ts';
import type { Refusal } from '../../src/inbound/types.ts';
import { startRelay, type TestRelay } from './setup.ts';

function swaks(args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile('swaks', args, { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, out: `${stdout}${stderr}` });
    });
  });
}

let dir: string;
let relay: TestRelay;
let denied: TestRelay;
let senders: TestRelay;
const seen: Refusal[] = [];

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'smarthost-refusals-'));
  writeFileSync(path.join(dir, 'users.yaml'), `scanner: ${await hashPassword('s3cret-Pass', { N: 1024 })}\n`);
  relay = await startRelay([
    'access:',
    '  relay: { mode: only, list: [192.0.2.1] }',
    'auth:',
    '  enabled: true',
    '  allowInsecure: true',
    '  usersFile: users.yaml',
    '  failureDelay: 10ms',
    'limits:',
    '  maxMessageSize: 2KB',
  ].join('\n'), { dir, onRefusal: (r) => seen.push(r) });
  denied = await startRelay('access:\n  connection: { mode: only, list: [192.0.2.1] }\n', { onRefusal: (r) => seen.push(r) });
  senders = await startRelay('', {
    onRefusal: (r) => seen.push(r),
    senderCheck: (ctx) => (ctx.mailFrom.startsWith('ceo@')
      ? { verdict: 'reject', code: 550, status: '5.7.60', message: `Sender <${ctx.mailFrom}> refused: this client may not send as it` } : { verdict: 'none' }),
  });
});

after(async () => {
  await relay.close();
  await denied.close();
  await senders.close();
  rmSync(dir, { recursive: true, force: true });
});

const last = () => seen.at(-1)!;

test('relay denied at RCPT: reason, command, reply and recipient', async () => {
  const n = seen.length;
  const r = await swaks(['--server', `127.0.0.1:${relay.port}`, '--from', 'printer@contoso.example', '--to', 'boss@fabrikam.example']);
  assert.match(r.out, /554 5\.7\.1 Relay access denied/);
  assert.equal(seen.length, n + 1);
  assert.deepEqual({ ...last(), at: undefined }, { at: undefined, client: '127.0.0.1', reason: 'relay-denied', stage: 'RCPT', reply: '554 5.7.1 Relay access denied', user: undefined, mailFrom: 'printer@contoso.example', recipient: 'boss@fabrikam.example' });
});

test('a wrong password at AUTH: auth-failed with the user name, never the password', async () => {
  const r = await swaks(['--server', `127.0.0.1:${relay.port}`, '--from', 'printer@contoso.example', '--to', 'boss@fabrikam.example', '--auth', 'LOGIN', '--auth-user', 'scanner', '--auth-password', 'Wrong-Pass9']);
  assert.match(r.out, /535 5\.7\.8/);
  const refusal = seen.find((x) => x.reason === 'auth-failed');
  assert.ok(refusal, JSON.stringify(seen));
  assert.equal(refusal.user, 'scanner');
  assert.equal(refusal.stage, 'AUTH');
  assert.doesNotMatch(JSON.stringify(seen), /Wrong-Pass9/);
});

test('a message over limits.maxMessageSize: too-big at DATA; a right login then relays and reports nothing', async () => {
  const r = await swaks(['--server', `127.0.0.1:${relay.port}`, '--from', 'printer@contoso.example', '--to', 'boss@fabrikam.example', '--auth', 'LOGIN', '--auth-user', 'scanner', '--auth-password', 's3cret-Pass', '--body', 'x'.repeat(5000)]);
  assert.match(r.out, /552 5\.3\.4/);
  assert.equal(last().reason, 'too-big');
  assert.equal(last().stage, 'DATA');
  const n = seen.length;
  const ok = await swaks(['--server', `127.0.0.1:${relay.port}`, '--from', 'printer@contoso.example', '--to', 'boss@fabrikam.example', '--auth', 'LOGIN', '--auth-user', 'scanner', '--auth-password', 's3cret-Pass']);
  assert.equal(ok.code, 0, ok.out);
  assert.equal(seen.length, n, 'an accepted message is no refusal');
});

test('outside the connection list: connection-denied at connect', async () => {
  const r = await swaks(['--server', `127.0.0.1:${denied.port}`, '--from', 'printer@contoso.example', '--to', 'boss@fabrikam.example']);
  assert.match(r.out, /554 5\.7\.1 Access denied/);
  assert.equal(last().reason, 'connection-denied');
  assert.equal(last().stage, 'CONNECT');
  assert.equal(last().client, '127.0.0.1');
});

test('a sender the sender rules refuse: sender-refused at MAIL, with the sender', async () => {
  const r = await swaks(['--server', `127.0.0.1:${senders.port}`, '--from', 'ceo@contoso.example', '--to', 'boss@fabrikam.example']);
  assert.match(r.out, /550 5\.7\.60/);
  assert.equal(last().reason, 'sender-refused');
  assert.equal(last().stage, 'MAIL');
  assert.equal(last().mailFrom, 'ceo@contoso.example');
});
