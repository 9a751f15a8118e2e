// Compatibility suite: real clients acting as the old devices smarthost exists for, through a real
// `smarthost serve`, to a strict upstream stand-in that refuses what Exchange Online refuses:
// TLS below 1.2, no STARTTLS or no AUTH, bare LF (5.6.11), a From that is not the permitted
// mailbox (5.7.60, read the way Exchange misreads an unquoted "@" in a display name), raw 8-bit
// headers without SMTPUTF8, and (stand-in only, Exchange's own behaviour is unconfirmed) a
// message without Date or Message-ID. Each delivered message's repaired headers are asserted.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { SMTPServer } from 'smtp-server';
import { hashPassword } from '../../src/core/password.ts';
import { createSmtpTransport } from '../../src/transports/smtp.ts';
import { upstreamSchema } from '../../src/config/sections/upstreams.ts';
import { tlsProfileOptions } from '../../src/inbound/tls-profile.ts';
import { freePort, startRelay, ROOT, type RelayProcess } from '../helpers/relay.ts';
import { generateCert } from '../helpers/upstream.ts';
import { RawClient } from '../inbound/raw-client.ts';
import pino from 'pino';

const MAILBOX = 'scanner@contoso.test';
const PASSWORD = 'Upstream-Pass-1';

interface Run { code: number; out: string }
function run(cmd: string, args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: 60_000, env: { ...process.env, ...opts.env } }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, out: `${stdout}${stderr}` });
    });
    child.stdin!.end(opts.input ?? '');
  });
}

interface Delivered { mailFrom: string; recipients: string[]; raw: string; tlsVersion?: string; user?: string }

/** The header block of a delivered message, unfolded, as [name, value]. */
function headers(raw: string): Array<[string, string]> {
  const block = raw.slice(0, raw.indexOf('\r\n\r\n')).replace(/\r\n[ \t]+/g, ' ');
  return block.split('\r\n').map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]);
}
const header = (raw: string, name: string): string | undefined => headers(raw).find(([n]) => n === name)?.[1];

/**
 * The From address as Exchange reads it: an "@" word in an unquoted display name is taken for the
 * address (SMTP2Graph #28). Quoted strings and encoded words are skipped, as Exchange does.
 */
function exchangeReadsFrom(value: string): string | undefined {
  const unquoted = value.replace(/"(?:[^"\\]|\\.)*"/g, '""').replace(/=\?[^?]+\?[BbQq]\?[^?]*\?=/g, '');
  const phrase = unquoted.includes('<') ? unquoted.slice(0, unquoted.indexOf('<')) : '';
  const inPhrase = /[^\s<>"]+@[^\s<>"]+/.exec(phrase);
  if (inPhrase) return inPhrase[0];
  return /<([^<>]+)>/.exec(unquoted)?.[1] ?? /[^\s<>"]+@[^\s<>"]+/.exec(unquoted)?.[0];
}

function refuse(code: number, message: string): Error & { responseCode: number } {
  return Object.assign(new Error(message), { responseCode: code });
}

let dir: string;
let relay: RelayProcess;
let legacyPort: number;
let intermediatePort: number;
let upstream: SMTPServer;
let weakUpstream: SMTPServer;
let weakPort: number;
let upstreamCa: string;
const delivered: Delivered[] = [];
const refusedUpstream: string[] = [];
let monoExe: string;
let webPort: number;

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'sh-devices-'));
  const cert = await generateCert();
  upstreamCa = cert.cert;
  writeFileSync(path.join(dir, 'upstream.crt'), cert.cert);
  upstream = new SMTPServer({
    key: cert.key, cert: cert.cert, minVersion: 'TLSv1.2', logger: false, disableReverseLookup: true,
    authMethods: ['LOGIN', 'PLAIN'], authOptional: true, hideSMTPUTF8: true,
    onAuth(auth, _s, cb) {
      if (auth.username === MAILBOX && auth.password === PASSWORD) return cb(null, { user: auth.username });
      cb(refuse(535, '5.7.139 Authentication unsuccessful'));
    },
    onMailFrom(address, session, cb) {
      if (!session.secure) return cb(refuse(530, '5.7.0 Must issue a STARTTLS command first'));
      if (!session.user) return cb(refuse(530, '5.7.57 Client not authenticated to send mail'));
      if (address.address.toLowerCase() !== MAILBOX) return cb(refuse(550, '5.7.60 SMTP; Client does not have permissions to send as this sender'));
      cb();
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const raw = Buffer.concat(chunks);
        const text = raw.toString('latin1');
        const head = text.slice(0, text.indexOf('\r\n\r\n') + 2);
        const problem = /(^|[^\r])\n/.test(text) ? '550 5.6.11 SMTPSEND.BareLinefeedsAreIllegal'
          : /[\x80-\xff]/.test(head) ? '550 5.6.7 raw 8-bit header without SMTPUTF8'
            : !header(text, 'date') || !header(text, 'message-id') ? '550 5.6.0 stand-in: Date and Message-ID are required'
              : exchangeReadsFrom(header(text, 'from') ?? '')?.toLowerCase() !== MAILBOX ? '550 5.7.60 SMTP; Client does not have permissions to send as this sender'
                : undefined;
        if (problem) {
          refusedUpstream.push(`${problem} :: ${header(text, 'subject')}`);
          return cb(refuse(Number(problem.slice(0, 3)), problem.slice(4)));
        }
        delivered.push({
          mailFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : '', recipients: session.envelope.rcptTo.map((r) => r.address),
          raw: raw.toString('utf8'), tlsVersion: (session as { tlsOptions?: { version?: string } }).tlsOptions?.version, user: session.user as string,
        });
        cb(null, '2.6.0 Queued mail for delivery');
      });
    },
  });
  upstream.on('error', () => {});
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  const upstreamPort = (upstream.server.address() as { port: number }).port;

  // An upstream that speaks only TLS 1.0/1.1: the relay must refuse to send to it.
  weakUpstream = new SMTPServer({ key: cert.key, cert: cert.cert, ...tlsProfileOptions('legacy'), maxVersion: 'TLSv1.1', logger: false, authOptional: true, disableReverseLookup: true, onData(s, _x, cb) { s.resume(); s.on('end', () => cb()); } });
  await new Promise<void>((resolve) => weakUpstream.listen(0, '127.0.0.1', resolve));
  weakUpstream.on('error', () => {}); // the refused handshake, seen from its side
  weakPort = (weakUpstream.server.address() as { port: number }).port;

  writeFileSync(path.join(dir, 'users.yaml'), `printer: ${await hashPassword('Device-Pass-1')}\n`);
  legacyPort = await freePort();
  intermediatePort = await freePort();
  webPort = await freePort();
  relay = await startRelay([
    'hostname: relay.test',
    'listen:',
    `  - { address: 127.0.0.1, port: ${legacyPort}, tlsProfile: legacy }`,
    `  - { address: 127.0.0.1, port: ${intermediatePort} }`,
    'auth: { enabled: true, usersFile: users.yaml }',
    'upstreams:',
    '  - name: m365',
    `    url: smtp+starttls://127.0.0.1:${upstreamPort}`,
    `    username: ${MAILBOX}`,
    `    password: ${PASSWORD}`,
    '    ca: upstream.crt',
    'pickup: { interval: 200ms, settle: 0s }',
    `web: { enabled: true, address: 127.0.0.1, port: ${webPort} }`,
    '',
  ].join('\n'), { dir, port: legacyPort, waitFor: [intermediatePort, webPort] });

  // The .NET-style client, compiled once with Debian's mcs.
  monoExe = path.join(dir, 'MonoSmtp.exe');
  const built = await run('mcs', ['-nowarn:618', `-out:${monoExe}`, '-r:System.dll', path.join(ROOT, 'test/fixtures/devices/MonoSmtp.cs')]);
  assert.equal(built.code, 0, built.out);
});

after(async () => {
  await relay?.stop();
  await new Promise<void>((resolve) => upstream.close(() => resolve()));
  await new Promise<void>((resolve) => weakUpstream.close(() => resolve()));
  rmSync(dir, { recursive: true, force: true });
});

/** The delivered message with this Subject (bounded wait). */
async function deliveredWith(subject: string, ms = 30_000): Promise<Delivered> {
  const end = Date.now() + ms;
  for (;;) {
    const found = delivered.find((d) => header(d.raw, 'subject') === subject || decodeSubject(header(d.raw, 'subject')) === subject);
    if (found) return found;
    if (Date.now() > end) throw new Error(`"${subject}" not delivered; upstream refused: ${refusedUpstream.join(' | ')}\n${relay.output().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function decodeSubject(s: string | undefined): string | undefined {
  if (!s) return s;
  return s.replace(/=\?([^?]+)\?B\?([^?]*)\?=\s*/gi, (_m, cs: string, b64: string) => new TextDecoder(cs).decode(Buffer.from(b64, 'base64')));
}

/** Common checks for every message that reached the stand-in. */
function assertExchangeReady(d: Delivered): void {
  assert.match(header(d.raw, 'date') ?? '', /^\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}$|,/);
  assert.match(header(d.raw, 'message-id') ?? '', /^<[^<>@\s]+@[^<>\s]+>$/);
  assert.equal(header(d.raw, 'bcc'), undefined, 'no Bcc header reaches an SMTP upstream');
  assert.match(d.tlsVersion ?? '', /^TLSv1\.[23]$/, 'upstream TLS is 1.2 or later');
  assert.equal(d.user, MAILBOX);
}

function mono(mode: 'tls' | 'plain' | 'pickup', port: number, subject: string, opts: { user?: string; pass?: string; bcc?: string; pickup?: string } = {}): Promise<Run> {
  return run('mono', [monoExe, mode, '127.0.0.1', String(port), opts.user ?? '', opts.pass ?? '', MAILBOX, 'boss@example.org', opts.bcc ?? '', subject, opts.pickup ?? '']);
}

test('Mono System.Net.Mail.SmtpClient: STARTTLS over TLS 1.0 + AUTH LOGIN to the legacy listener is delivered, Message-ID added', async () => {
  const r = await mono('tls', legacyPort, 'mono tls1.0 auth', { user: 'printer', pass: 'Device-Pass-1', bcc: 'archive@example.org' });
  assert.match(r.out, /SENT/, r.out);
  const d = await deliveredWith('mono tls1.0 auth');
  assertExchangeReady(d);
  assert.deepEqual(d.recipients.sort(), ['archive@example.org', 'boss@example.org']);
  assert.match(d.raw, /Message-ID: <[^>]+@relay\.test>/, 'Mono sends none: the relay added it');
  assert.match(d.raw, /by relay\.test with ESMTPSA/, 'the device authenticated over TLS');
  assert.match(relay.output(), /"event":"smtp-headers-repaired".*added Message-ID/);
});

test('the log at start and the console data name the listener that accepts old TLS, and only that one', async () => {
  const warnings = relay.output().split('\n').filter((l) => l.includes('"event":"smtp-legacy-tls"'));
  assert.equal(warnings.length, 1);
  assert.match(warnings[0], new RegExp(`127\\.0\\.0\\.1:${legacyPort} accepts TLS 1\\.0 and 1\\.1.*only on a LAN`));
  const dashboard = await (await fetch(`http://127.0.0.1:${webPort}/api/dashboard`)).json() as { devices: { oldTls: Array<{ listener: string; note: string }> } };
  assert.deepEqual(dashboard.devices.oldTls.map((l) => l.listener), [`127.0.0.1:${legacyPort}`]);
});

test('the same client fails against an intermediate (TLS 1.2+) listener, with one log line saying why and what to set', async () => {
  const r = await mono('tls', intermediatePort, 'mono tls1.0 refused', { user: 'printer', pass: 'Device-Pass-1' });
  assert.match(r.out, /FAILED/);
  const lines = relay.output().split('\n').filter((l) => l.includes('"event":"smtp-tls-failed"') && l.includes(`:${intermediatePort}`));
  assert.equal(lines.length, 1, lines.join('\n'));
  const line = JSON.parse(lines[0]);
  assert.deepEqual(line.offeredVersions, ['TLS 1.0']);
  assert.match(line.advice, /tlsProfile: legacy/);
});

test('Mono SmtpClient without TLS and without AUTH (relay by address) is delivered', async () => {
  const r = await mono('plain', intermediatePort, 'mono plain');
  assert.match(r.out, /SENT/, r.out);
  assertExchangeReady(await deliveredWith('mono plain'));
});

test("Mono SmtpClient's pickup-directory file is queued and delivered, with the Date kept and a Message-ID added", async () => {
  const drop = path.join(dir, 'dotnet-drop');
  mkdirSync(drop);
  const r = await mono('pickup', 0, 'mono pickup', { pickup: drop, bcc: 'hidden@example.org' });
  assert.match(r.out, /SENT/, r.out);
  const [file] = readdirSync(drop);
  // Observed: Mono writes the bare message (no X-Sender/X-Receiver lines, unlike .NET Framework,
  // whose format test/pickup/formats.test.ts covers), so the envelope comes from the headers.
  const written = readFileSync(path.join(drop, file), 'utf8');
  assert.doesNotMatch(written, /^Message-ID:/im);
  assert.doesNotMatch(written, /hidden@example\.org/, 'observed: Mono drops the Bcc recipient from its pickup file (docs/devices.md)');
  renameSync(path.join(drop, file), path.join(relay.mailroot, 'pickup', file));
  const d = await deliveredWith('mono pickup');
  assertExchangeReady(d);
  assert.deepEqual(d.recipients, ['boss@example.org']);
  assert.equal(header(d.raw, 'date'), /^Date: (.*)$/m.exec(written)![1], "the device's Date is kept");
  assert.match(relay.output(), /"event":"pickup-queued".*"repairs":\["added Message-ID: \(the client sent none\)"\]/);
});

test('swaks --tls-protocol tlsv1 and tlsv1_1 with AUTH PLAIN to the legacy listener', async () => {
  for (const proto of ['tlsv1', 'tlsv1_1']) {
    const subject = `swaks ${proto}`;
    const r = await run('swaks', ['--server', `127.0.0.1:${legacyPort}`, '--tls', '--tls-protocol', proto, '--tls-cipher', 'DEFAULT:@SECLEVEL=0', '--auth', 'PLAIN', '--auth-user', 'printer', '--auth-password', 'Device-Pass-1',
      '--from', MAILBOX, '--to', 'boss@example.org', '--header', `Subject: ${subject}`]);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, new RegExp(`TLS started with cipher (TLSv1|${proto === 'tlsv1' ? 'TLSv1' : 'TLSv1.1'})`, 'i'));
    assertExchangeReady(await deliveredWith(subject));
  }
});

test('msmtp limited to TLS 1.0 by a GnuTLS priority string, AUTH LOGIN', async () => {
  const conf = path.join(dir, 'msmtprc');
  writeFileSync(conf, [
    'account device', 'host 127.0.0.1', `port ${legacyPort}`, 'tls on', 'tls_starttls on', 'tls_certcheck off',
    // GnuTLS: TLS 1.0 only; %PROFILE_LOW + SHA1 signatures as old firmware's stacks have
    'tls_priorities NORMAL:-VERS-ALL:+VERS-TLS1.0:+SIGN-ALL:%PROFILE_LOW', 'auth login', 'user printer', 'password Device-Pass-1', `from ${MAILBOX}`, '',
  ].join('\n'), { mode: 0o600 });
  const r = await run('msmtp', ['-C', conf, '-a', 'device', 'boss@example.org'], { input: `From: ${MAILBOX}\r\nTo: boss@example.org\r\nSubject: msmtp tls1.0\r\n\r\nbody\r\n` });
  assert.equal(r.code, 0, r.out);
  assertExchangeReady(await deliveredWith('msmtp tls1.0'));
  const session = relay.output().split('\n').filter((l) => l.includes('"event":"smtp-session"') && l.includes('"user":"printer"') && l.includes('"tls":true'));
  assert.ok(session.length > 0);
});

test('Python smtplib over an ssl context limited to TLS 1.0, AUTH LOGIN', async () => {
  const script = `
import smtplib, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.minimum_version = ssl.TLSVersion.TLSv1
ctx.maximum_version = ssl.TLSVersion.TLSv1
ctx.set_ciphers('DEFAULT:@SECLEVEL=0')
s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]), timeout=20)
s.starttls(context=ctx)
print('VERSION', s.sock.version())
s.login('printer', 'Device-Pass-1')
s.sendmail('${MAILBOX}', ['boss@example.org'], 'From: ${MAILBOX}\\r\\nTo: boss@example.org\\r\\nSubject: python tls1.0\\r\\n\\r\\nbody\\r\\n')
s.quit()
`;
  const r = await run('/usr/bin/python3', ['-c', script, String(legacyPort)]);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /VERSION TLSv1\n/);
  assertExchangeReady(await deliveredWith('python tls1.0'));
});

/** A raw device: exact bytes, one reply awaited after every line (no pipelining). */
async function rawDevice(lines: Array<string | { write: string }>, opts: { early?: boolean; quit?: boolean } = {}): Promise<Array<{ code: number; text: string }>> {
  const c = await RawClient.connect(intermediatePort);
  const replies: Array<{ code: number; text: string }> = [];
  if (opts.early) c.write(`${lines.shift() as string}\r\n`); // sent before the greeting is read
  replies.push(await c.reply());
  if (opts.early) replies.push(await c.reply());
  for (const l of lines) {
    if (typeof l === 'string') c.write(`${l}\r\n`);
    else c.write(l.write);
    replies.push(await c.reply());
  }
  if (opts.quit !== false) replies.push(await c.cmd('QUIT'));
  c.close();
  return replies;
}

const message = (subject: string, extra = '') => ({ write: `From: ${MAILBOX}\r\nTo: boss@example.org\r\nSubject: ${subject}\r\n${extra}\r\nScan attached.\r\n.\r\n` });

test('a device that talks before the greeting is answered, not refused', async () => {
  const r = await rawDevice(['EHLO early.lan', `MAIL FROM:<${MAILBOX}>`, 'RCPT TO:<boss@example.org>', 'DATA', message('early talker')], { early: true });
  assert.deepEqual(r.map((x) => x.code), [220, 250, 250, 250, 354, 250, 221]);
  assertExchangeReady(await deliveredWith('early talker'));
});

test('HELO only (no EHLO), one line at a time, and a drop after the final 250 without QUIT: kept and delivered', async () => {
  const r = await rawDevice(['HELO oldcopier', `MAIL FROM:<${MAILBOX}>`, 'RCPT TO:<boss@example.org>', 'DATA', message('helo only no quit')], { quit: false });
  assert.deepEqual(r.map((x) => x.code), [220, 250, 250, 250, 354, 250]);
  const d = await deliveredWith('helo only no quit');
  assertExchangeReady(d);
  assert.match(d.raw, /from oldcopier \(/);
  assert.match(d.raw, /with SMTP id/, 'HELO sessions are recorded as SMTP, not ESMTP');
});

test('AUTH LOGIN and PLAIN, with and without the initial response, after STARTTLS on the legacy listener', async () => {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const variants: Array<[string, string[]]> = [
    ['PLAIN initial', [`AUTH PLAIN ${b64('\0printer\0Device-Pass-1')}`]],
    ['PLAIN challenge', ['AUTH PLAIN', b64('\0printer\0Device-Pass-1')]],
    ['LOGIN initial', [`AUTH LOGIN ${b64('printer')}`, b64('Device-Pass-1')]],
    ['LOGIN challenge', ['AUTH LOGIN', b64('printer'), b64('Device-Pass-1')]],
  ];
  for (const [name, steps] of variants) {
    const c = await RawClient.connect(legacyPort);
    await c.reply();
    await c.cmd('EHLO device.lan');
    assert.equal((await c.cmd('STARTTLS')).code, 220);
    await c.upgrade();
    const ehlo = await c.cmd('EHLO device.lan');
    assert.ok(ehlo.lines.some((l) => /AUTH PLAIN LOGIN|AUTH LOGIN PLAIN/.test(l)), ehlo.text);
    let last = { code: 0, text: '' };
    for (const s of steps) last = await c.cmd(s);
    assert.equal(last.code, 235, `${name}: ${last.text}`);
    assert.equal((await c.cmd(`MAIL FROM:<${MAILBOX}>`)).code, 250);
    assert.equal((await c.cmd('RCPT TO:<boss@example.org>')).code, 250);
    assert.equal((await c.cmd('DATA')).code, 354);
    c.write(message(`auth ${name}`).write);
    assert.equal((await c.reply()).code, 250);
    c.close();
    assertExchangeReady(await deliveredWith(`auth ${name}`));
  }
});

test('bare LF line ends are turned into CRLF before the upstream, which refuses bare LF', async () => {
  const r = await rawDevice(['EHLO lf.lan', `MAIL FROM:<${MAILBOX}>`, 'RCPT TO:<boss@example.org>', 'DATA', { write: `From: ${MAILBOX}\nTo: boss@example.org\nSubject: bare lf\n\nline one\nline two\r\n.\r\n` }]);
  assert.equal(r[5].code, 250);
  const d = await deliveredWith('bare lf');
  assertExchangeReady(d);
  assert.match(d.raw, /line one\r\nline two\r\n/);
});

test('a From display name with an unquoted "@" is quoted, so the upstream reads the permitted address', async () => {
  const from = `Scan from printer@lab.local <${MAILBOX}>`;
  assert.equal(exchangeReadsFrom(from), 'printer@lab.local', 'the stand-in misreads it as Exchange does');
  const r = await rawDevice(['EHLO mfp.lan', `MAIL FROM:<${MAILBOX}>`, 'RCPT TO:<boss@example.org>', 'DATA',
    { write: `From: ${from}\r\nTo: boss@example.org\r\nSubject: broken from\r\nDate: Mon, 07 Dec 2026 09:00:00 +0100\r\nMessage-ID: <42@mfp.lan>\r\n\r\nScan.\r\n.\r\n` }]);
  assert.equal(r[5].code, 250);
  const d = await deliveredWith('broken from');
  assertExchangeReady(d);
  assert.equal(header(d.raw, 'from'), `"Scan from printer@lab.local" <${MAILBOX}>`);
  assert.equal(header(d.raw, 'date'), 'Mon, 07 Dec 2026 09:00:00 +0100', 'present headers are left alone');
  assert.equal(header(d.raw, 'message-id'), '<42@mfp.lan>');
});

test('raw 8-bit Subject and From name without SMTPUTF8 are encoded (RFC 2047); a Bcc header is removed, its recipient kept', async () => {
  const c = await RawClient.connect(intermediatePort);
  await c.reply();
  await c.cmd('EHLO kyocera.lan');
  await c.cmd(`MAIL FROM:<${MAILBOX}>`);
  await c.cmd('RCPT TO:<boss@example.org>');
  await c.cmd('RCPT TO:<blind@example.org>');
  assert.equal((await c.cmd('DATA')).code, 354);
  c.write(Buffer.concat([Buffer.from(`From: Büro-Drucker <${MAILBOX}>\r\nTo: boss@example.org\r\nBcc: blind@example.org\r\nSubject: Scan vom Büro\r\n\r\nbody\r\n.\r\n`, 'utf8')]));
  assert.equal((await c.reply()).code, 250);
  c.close();
  const d = await deliveredWith('Scan vom Büro');
  assertExchangeReady(d);
  assert.match(header(d.raw, 'subject')!, /^=\?UTF-8\?B\?/);
  assert.match(header(d.raw, 'from')!, new RegExp(`^=\\?UTF-8\\?B\\?[^?]+\\?= <${MAILBOX}>$`));
  assert.deepEqual(d.recipients.sort(), ['blind@example.org', 'boss@example.org']);
  assert.doesNotMatch(d.raw, /blind@example\.org/);
  // every repair is logged, in words
  const repaired = relay.output().split('\n').filter((l) => l.includes('"event":"smtp-headers-repaired"') && l.includes('Bcc'));
  assert.equal(repaired.length, 1);
  assert.match(repaired[0], /encoded the raw 8-bit Subject.*|removed the Bcc/);
});

test('upstream TLS stays 1.2 or later: a smart host that offers only TLS 1.0/1.1 is refused, whatever the listeners accept', async () => {
  const transport = createSmtpTransport(upstreamSchema.parse({ name: 'weak', url: `smtp+starttls://127.0.0.1:${weakPort}`, ca: path.join(dir, 'upstream.crt') }), { logger: pino({ level: 'silent' }), hostname: 'relay.test', pool: false });
  try {
    const raw = Buffer.from(`From: ${MAILBOX}\r\nSubject: weak\r\n\r\nx\r\n`);
    const [outcome] = await transport.send({ id: 'weak-1', mailFrom: MAILBOX, recipients: ['boss@example.org'], size: raw.length, open: () => Readable.from([raw]), read: async () => raw });
    assert.equal(outcome.action, 'delayed');
    assert.match(outcome.status, /^4\./);
    assert.match(outcome.diagnostic ?? '', /unsupported protocol|protocol version/i);
  } finally {
    await transport.close();
  }
  assert.ok(upstreamCa.length > 0);
});
