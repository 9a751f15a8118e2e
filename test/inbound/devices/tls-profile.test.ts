// TLS profiles per listener, STARTTLS withheld per client or after a failed handshake, and the one
// log line a failed handshake gives: with real openssl s_client as the old device.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { parseConfigText } from '../../../src/config/load.ts';
import { ManualClock } from '../../../src/core/clock.ts';
import { DevicePolicy, MAX_REMEMBERED } from '../../../src/inbound/device-policy.ts';
import { makeConfig, startRelay, type TestRelay } from '../setup.ts';
import { RawClient } from '../raw-client.ts';

interface Run { code: number; out: string }

function run(cmd: string, args: string[], input = ''): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, out: `${stdout}${stderr}` });
    });
    child.stdin!.end(input);
  });
}

/** openssl s_client as a device: STARTTLS (or implicit TLS) with one protocol version. */
function sClient(port: number, version: string, opts: { starttls?: boolean; cipher?: string; bind?: string } = {}): Promise<Run> {
  return run('openssl', [
    's_client', '-brief', ...(opts.starttls === false ? [] : ['-starttls', 'smtp']), '-connect', `127.0.0.1:${port}`, `-${version}`,
    // Debian's openssl refuses TLS 1.0/1.1 at its default security level, as Node's does
    '-cipher', opts.cipher ?? 'DEFAULT:@SECLEVEL=0', ...(opts.bind ? ['-bind', `${opts.bind}:0`] : []),
  ]);
}

/** Waits (bounded) for log lines matching a predicate. */
async function logsWhere(relay: TestRelay, pred: (l: Record<string, unknown>) => boolean, atLeast = 1): Promise<Array<Record<string, unknown>>> {
  const end = Date.now() + 10_000;
  for (;;) {
    const found = relay.logs.filter(pred);
    if (found.length >= atLeast || Date.now() > end) return found;
    await new Promise((r) => setTimeout(r, 20));
  }
}

let relay: TestRelay;
let legacy: number;
let intermediate: number;
let modern: number;
let implicitIntermediate: number;
let remembering: TestRelay;

before(async () => {
  relay = await startRelay([
    'listen:',
    '  - { address: 127.0.0.1, port: 1, tlsProfile: legacy }',
    '  - { address: 127.0.0.1, port: 1 }',
    '  - { address: 127.0.0.1, port: 1, tlsProfile: modern }',
    '  - { address: 127.0.0.1, port: 1, tls: implicit }',
    'devices:',
    '  discardEhloKeywords:',
    '    - { clients: [127.0.0.5, 127.0.1.0/24], keywords: [starttls, PIPELINING] }',
  ].join('\n'));
  [legacy, intermediate, modern, implicitIntermediate] = relay.ports;
  remembering = await startRelay('devices:\n  tlsFailureMemory: 1h\n');
});

after(async () => {
  await relay.close();
  await remembering.close();
});

test('legacy listener: TLS 1.0 and 1.1 handshakes complete, with the RSA-key-exchange suite AES128-SHA too', async () => {
  for (const v of ['tls1', 'tls1_1']) {
    const r = await sClient(legacy, v);
    assert.match(r.out, /CONNECTION ESTABLISHED/, r.out);
    assert.match(r.out, v === 'tls1' ? /Protocol version: TLSv1\n/ : /Protocol version: TLSv1\.1/, r.out);
  }
  const rsa = await sClient(legacy, 'tls1', { cipher: 'AES128-SHA:@SECLEVEL=0' });
  assert.match(rsa.out, /Ciphersuite: AES128-SHA/, rsa.out);
  const warn = relay.logs.filter((l) => l.event === 'smtp-legacy-tls');
  assert.equal(warn.length, 1, 'one warning at start, for the legacy listener only');
  assert.match(String(warn[0].msg), new RegExp(`127\\.0\\.0\\.1:${legacy} accepts TLS 1\\.0 and 1\\.1 .*only on a LAN`));
});

test('intermediate refuses TLS 1.0/1.1 and modern refuses TLS 1.2; each failure is logged once, with client, session, offer and advice', async () => {
  for (const v of ['tls1', 'tls1_1']) assert.doesNotMatch((await sClient(intermediate, v)).out, /CONNECTION ESTABLISHED/);
  assert.doesNotMatch((await sClient(modern, 'tls1_2')).out, /CONNECTION ESTABLISHED/);
  assert.match((await sClient(modern, 'tls1_3')).out, /Protocol version: TLSv1\.3/);
  assert.match((await sClient(intermediate, 'tls1_2')).out, /Protocol version: TLSv1\.2/);
  const failed = await logsWhere(relay, (l) => l.event === 'smtp-tls-failed', 3);
  assert.equal(failed.length, 3, JSON.stringify(failed));
  const first = failed[0];
  assert.equal(first.client, '127.0.0.1');
  assert.equal(first.listener, `127.0.0.1:${intermediate}`);
  assert.equal(typeof first.session, 'string');
  assert.deepEqual(first.offeredVersions, ['TLS 1.0']);
  assert.ok((first.offeredCiphers as string[]).includes('AES128-SHA'));
  assert.match(String(first.advice), /offers at most TLS 1\.0 .* set tlsProfile: legacy \(LAN only\) on this listener/);
  assert.match(String(first.advice), /withhold STARTTLS/);
  assert.deepEqual(failed[2].offeredVersions, ['TLS 1.2']);
  assert.match(String(failed[2].advice), /set tlsProfile: intermediate/);
  assert.match(String(failed[2].msg), /^TLS handshake with 127\.0\.0\.1 failed on 127\.0\.0\.1:\d+: .*\(offered TLS 1\.2\)/);
  assert.equal(relay.logs.filter((l) => l.event === 'smtp-error').length, 0, 'no second, anonymous error line');
});

test('implicit TLS: a failed handshake is logged once too (no session yet)', async () => {
  const before = relay.logs.filter((l) => l.event === 'smtp-tls-failed').length;
  assert.doesNotMatch((await sClient(implicitIntermediate, 'tls1', { starttls: false })).out, /CONNECTION ESTABLISHED/);
  const failed = await logsWhere(relay, (l) => l.event === 'smtp-tls-failed', before + 1);
  const last = failed[failed.length - 1];
  assert.equal(last.stage, 'implicit');
  assert.deepEqual(last.offeredVersions, ['TLS 1.0']);
  assert.equal(relay.logs.filter((l) => l.event === 'smtp-error').length, 0);
});

test('discardEhloKeywords: STARTTLS and PIPELINING are not announced to the listed clients only', async () => {
  for (const [addr, listed] of [['127.0.0.5', true], ['127.0.1.9', true], ['127.0.0.6', false]] as const) {
    const c = await RawClient.connect(intermediate, { localAddress: addr });
    await c.reply();
    const ehlo = await c.cmd('EHLO printer.lan');
    assert.equal(ehlo.code, 250);
    assert.equal(ehlo.lines.some((l) => /STARTTLS/.test(l)), !listed, `${addr}: ${ehlo.text}`);
    assert.equal(ehlo.lines.some((l) => /PIPELINING/.test(l)), !listed, `${addr}: ${ehlo.text}`);
    assert.ok(ehlo.lines.some((l) => /SIZE/.test(l)), 'other keywords stay');
    // the message still goes through in plain text
    assert.equal((await c.cmd('MAIL FROM:<scan@example.org>')).code, 250);
    c.close();
  }
});

test('tlsFailureMemory: after a failed handshake the client is not offered STARTTLS, others still are, and the console data lists it', async () => {
  const c0 = await RawClient.connect(remembering.port, { localAddress: '127.0.0.21' });
  await c0.reply();
  assert.ok((await c0.cmd('EHLO printer.lan')).lines.some((l) => /STARTTLS/.test(l)));
  c0.close();
  assert.doesNotMatch((await sClient(remembering.port, 'tls1', { bind: '127.0.0.21' })).out, /CONNECTION ESTABLISHED/);
  const [line] = await logsWhere(remembering, (l) => l.event === 'smtp-tls-failed');
  assert.equal(line.client, '127.0.0.21');
  assert.match(String(line.starttlsWithheldUntil), /^\d{4}-/);
  const again = await RawClient.connect(remembering.port, { localAddress: '127.0.0.21' });
  await again.reply();
  assert.ok(!(await again.cmd('EHLO printer.lan')).lines.some((l) => /STARTTLS/.test(l)), 'withheld after the failure');
  again.close();
  const other = await RawClient.connect(remembering.port, { localAddress: '127.0.0.22' });
  await other.reply();
  assert.ok((await other.cmd('EHLO printer.lan')).lines.some((l) => /STARTTLS/.test(l)), 'another client still sees it');
  other.close();
  const listed = remembering.listener.tlsFailures!();
  assert.equal(listed.length, 1);
  assert.equal(listed[0].client, '127.0.0.21');
  assert.deepEqual(listed[0].offered.versions, ['TLS 1.0']);
});

test('config check refuses STARTTLS withheld from clients on a listener that requires TLS; ports scope it', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'smarthost-devcfg-'));
  try {
    const base = 'listen:\n  - { address: 0.0.0.0, port: 25 }\n  - { address: 0.0.0.0, port: 587, requireTls: true }\n';
    assert.throws(() => parseConfigText(`${base}devices:\n  discardEhloKeywords:\n    - { clients: [192.168.1.60], keywords: [STARTTLS] }\n`, path.join(dir, 'c.yaml')),
      /devices\.discardEhloKeywords\.0\.keywords.*192\.168\.1\.60 on 0\.0\.0\.0:587, which has requireTls/s);
    const ok = parseConfigText(`${base}devices:\n  discardEhloKeywords:\n    - { clients: [192.168.1.60], keywords: [STARTTLS], ports: [25] }\n`, path.join(dir, 'c.yaml'));
    assert.deepEqual(ok.devices.discardEhloKeywords[0].keywords, ['STARTTLS']);
    assert.throws(() => parseConfigText('devices:\n  discardEhloKeywords:\n    - { clients: [192.168.1.60], keywords: [VRFY] }\n', path.join(dir, 'c.yaml')), /keywords/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a port check on an implicit TLS listener (connect, close, no ClientHello) is not reported as a device failing TLS', async () => {
  const before = relay.logs.filter((l) => l.event === 'smtp-tls-failed').length;
  const s = net.connect(implicitIntermediate, '127.0.0.1');
  await new Promise<void>((resolve) => s.once('connect', () => resolve()));
  s.destroy();
  await logsWhere(relay, (l) => l.event === 'smtp-error', 1);
  assert.equal(relay.logs.filter((l) => l.event === 'smtp-tls-failed').length, before);
});

test('the memory of failed handshakes is bounded: the oldest addresses go first', () => {
  const clock = new ManualClock(Date.now());
  const config = makeConfig('devices:\n  tlsFailureMemory: 1h\n', mkdtempSync(path.join(tmpdir(), 'smarthost-devmem-')));
  const policy = new DevicePolicy(config, clock);
  const listener = config.listen[0];
  const fail = (i: number) => policy.recordFailure(listener, 'x', { remoteAddress: `fd00::${i.toString(16)}`, stage: 'starttls', error: new Error('unsupported protocol'), hello: { versions: ['TLS 1.0'], ciphers: [] } });
  for (let i = 1; i <= MAX_REMEMBERED + 5; i++) fail(i);
  const listed = policy.failedClients();
  assert.equal(listed.length, MAX_REMEMBERED);
  assert.ok(!listed.some((f) => f.client === 'fd00::1'), 'the oldest is forgotten');
  assert.ok(listed.some((f) => f.client === `fd00::${(MAX_REMEMBERED + 5).toString(16)}`));
  assert.ok(policy.hidden(listener, listener.port, `fd00::${(MAX_REMEMBERED + 5).toString(16)}`, false).has('STARTTLS'));
  clock.advance(3_600_001);
  assert.equal(policy.failedClients().length, 0, 'and every entry expires');
  assert.ok(!policy.hidden(listener, listener.port, `fd00::${(MAX_REMEMBERED + 5).toString(16)}`, false).has('STARTTLS'));
});

test('a device that closes after "220 Ready to start TLS" without a ClientHello is one failure line, and the relay goes on', async () => {
  const before = relay.logs.filter((l) => l.event === 'smtp-tls-failed').length;
  for (const how of ['destroy', 'end'] as const) {
    const c = await RawClient.connect(intermediate, { localAddress: '127.0.0.31' });
    await c.reply();
    await c.cmd('EHLO printer.lan');
    assert.equal((await c.cmd('STARTTLS')).code, 220);
    if (how === 'end') (c as unknown as { socket: net.Socket }).socket.end();
    else c.close();
    assert.ok(await c.waitClosed());
  }
  const lines = (await logsWhere(relay, (l) => l.event === 'smtp-tls-failed', before + 2)).slice(before);
  assert.equal(lines.length, 2);
  for (const l of lines) {
    assert.equal(l.client, '127.0.0.31');
    assert.match(String(l.reason), /closed the connection before sending a TLS ClientHello/);
  }
  const ok = await RawClient.connect(intermediate);
  assert.equal((await ok.reply()).code, 220);
  ok.close();
});

test('pregreetWait: a client outside the relay list that talks before the greeting is refused; relay-list clients are answered at once', async () => {
  const r = await startRelay('access:\n  relay: { mode: only, list: [127.0.0.1] }\ndevices:\n  pregreetWait: 3s\n');
  try {
    const early = await RawClient.connect(r.port, { localAddress: '127.0.0.40' });
    early.write('EHLO bot.example\r\n');
    const refused = await early.reply(10_000);
    assert.equal(refused.code, 421);
    assert.match(refused.text, /talk too soon/);
    assert.ok(await early.waitClosed());
    const device = await RawClient.connect(r.port, { localAddress: '127.0.0.1' });
    device.write('EHLO printer.lan\r\n');
    assert.equal((await device.reply()).code, 220);
    assert.equal((await device.reply()).code, 250);
    device.close();
    const patient = await RawClient.connect(r.port, { localAddress: '127.0.0.41' });
    assert.equal((await patient.reply(10_000)).code, 220, 'one that waits for the greeting gets it');
    assert.equal((await patient.cmd('EHLO host.example')).code, 250);
    patient.close();
  } finally {
    await r.close();
  }
});
