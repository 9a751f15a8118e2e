// smarthost doctor against real peers on loopback: an smtp-server upstream with STARTTLS and AUTH
// (right and wrong password, and one that is down), a connector upstream, a DNS server with the
// sending domains' SPF records, an HTTP server whose Date header is the "true" time, and
// certificates that are valid, about to expire and expired.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SMTPServer } from 'smtp-server';
import { generate } from 'selfsigned';
import { startDnsServer, type TestDnsServer } from '../../helpers/dns-server.ts';
import { createDnsClient } from '../../../src/diagnostics/dns/client.ts';
import { checkSendingPath, sendingPathOf } from '../../../src/diagnostics/m365/sending-path.ts';

const DAY = 86_400_000;
let dir: string;
let smtp: SMTPServer;
let smtpPort: number;
let closedPort: number;
let dns: TestDnsServer;
let http: HttpServer;
let httpPort: number;
let httpSkewMs = 0;
const logins: string[] = [];

async function certificate(days: number, file: string): Promise<{ cert: string; key: string }> {
  const now = Date.now();
  const pems = await generate([{ name: 'commonName', value: 'localhost' }], {
    keySize: 2048, algorithm: 'sha256',
    notBeforeDate: new Date(now - (days < 0 ? 30 : 1) * DAY), notAfterDate: new Date(now + days * DAY),
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }] }],
  } as Parameters<typeof generate>[1]);
  writeFileSync(path.join(dir, file), pems.cert);
  return { cert: pems.cert, key: pems.private };
}

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'doctor-'));
  const upstreamCert = await certificate(365, 'upstream.crt');
  await certificate(365, 'good.crt');
  await certificate(5, 'soon.crt');
  await certificate(-1, 'expired.crt');
  smtp = new SMTPServer({
    key: upstreamCert.key, cert: upstreamCert.cert, authMethods: ['PLAIN', 'LOGIN'], logger: false,
    onAuth(auth, _session, cb) {
      logins.push(auth.username ?? '');
      if (auth.username === 'scanner@example.test' && auth.password === 'right-password') return cb(null, { user: auth.username });
      const err = new Error('5.7.139 Authentication unsuccessful, the user credentials were incorrect.') as Error & { responseCode: number };
      err.responseCode = 535;
      return cb(err);
    },
    onData(stream, _session, cb) { stream.resume(); stream.on('end', () => cb(new Error('doctor must not send mail'))); },
  });
  await new Promise<void>((resolve) => smtp.listen(0, '127.0.0.1', resolve));
  smtpPort = (smtp.server.address() as { port: number }).port;
  // A port with nothing listening: bind one, note it, close it.
  const probe = new SMTPServer({ logger: false });
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  closedPort = (probe.server.address() as { port: number }).port;
  await new Promise<void>((resolve) => probe.close(resolve));
  dns = await startDnsServer({
    'example.test': [{ TXT: 'v=spf1 ip4:198.51.100.9 include:spf.protection.outlook.com -all' }],
    'other.test': [{ TXT: 'v=spf1 ip4:127.0.0.1 -all' }],
    'nested.test': [{ TXT: 'v=spf1 include:_spf.nested.test -all' }],
    '_spf.nested.test': [{ TXT: 'v=spf1 include:spf.protection.outlook.com ~all' }],
    'noms.test': [{ TXT: 'v=spf1 a mx -all' }],
    'slow.test': ['TIMEOUT'],
    'spf.protection.outlook.com': [{ TXT: 'v=spf1 ip4:40.92.0.0/15 ip4:40.107.0.0/16 -all' }],
  });
  http = createHttpServer((_req, res) => { res.sendDate = false; res.setHeader('Date', new Date(Date.now() + httpSkewMs).toUTCString()); res.end(); });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  httpPort = (http.address() as { port: number }).port;
});

after(async () => {
  await new Promise<void>((resolve) => smtp.close(resolve));
  await dns.stop();
  await new Promise<void>((resolve) => http.close(() => resolve()));
  rmSync(dir, { recursive: true, force: true });
});

function writeConfig(name: string, opts: { password: string; cert: string; relayPort?: number }): string {
  const file = path.join(dir, name);
  writeFileSync(file, [
    'mailroot: ./mailroot',
    'tls:',
    `  cert: ${opts.cert}`,
    `  key: ${opts.cert}`,
    'upstreams:',
    '  - name: relay',
    `    url: smtp+starttls://127.0.0.1:${opts.relayPort ?? smtpPort}`,
    '    username: scanner@example.test',
    `    password: ${opts.password}`,
    '    ca: upstream.crt',
    '    timeout: 5',
    '  - name: direct',
    '    url: connector://example.test',
    '    connector:',
    '      host: 127.0.0.1',
    `      port: ${smtpPort}`,
    '    ca: upstream.crt',
    'senders:',
    '  - clients: ["192.168.1.0/24"]',
    '    allow: ["*@example.test"]',
    '    upstream: direct',
    '  - clients: ["192.168.2.0/24"]',
    '    allow: ["printer@other.test"]',
    '    upstream: relay',
    '',
  ].join('\n'));
  return file;
}

function runDoctor(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['bin/smarthost.js', 'doctor', '--resolver', `127.0.0.1:${dns.port}`, '--timeout', '3000', '--time-url', `http://127.0.0.1:${httpPort}/`, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), 45_000);
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
  });
}

interface Item { area: string; subject: string; state: string; detail: string }

test('all good: SPF authorises both paths, certificate valid, upstream auth accepted, clock right → exit 0', async () => {
  httpSkewMs = 0;
  const config = writeConfig('good.yaml', { password: 'right-password', cert: 'good.crt' });
  const r = await runDoctor(['--config', config, '--public-ip', '198.51.100.9', '--json']);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const items = JSON.parse(r.stdout).items as Item[];
  const by = (area: string) => items.filter((i) => i.area === area);
  // The relay's own mailbox domain does not list the smart host: only a warning (providers send from other hosts).
  assert.deepEqual(by('spf').map((i) => [i.subject, i.state]), [['example.test via direct', 'ok'], ['example.test via relay', 'warning'], ['other.test via relay', 'ok']]);
  assert.match(by('spf')[0].detail, /SPF passes for 198\.51\.100\.9/);
  assert.match(by('spf')[1].detail, /SPF gives "fail" for 127\.0\.0\.1: if 127\.0\.0\.1 sends from other addresses/);
  assert.match(by('spf')[2].detail, /SPF passes for 127\.0\.0\.1/);
  assert.deepEqual(by('upstream').map((i) => i.state), ['ok', 'ok']);
  assert.match(by('upstream')[0].detail, /authenticated as scanner@example\.test \(nothing was sent\)/);
  assert.equal(by('tls')[0].state, 'ok');
  assert.equal(by('clock')[0].state, 'ok');
  assert.ok(logins.includes('scanner@example.test'));
});

test('problems: wrong password, upstream down, relay address not in SPF, expired certificate, clock 10 min off → exit 1', async () => {
  httpSkewMs = -10 * 60_000;
  const config = writeConfig('bad.yaml', { password: 'wrong-password', cert: 'expired.crt' });
  const r = await runDoctor(['--config', config, '--public-ip', '203.0.113.77', '--json']);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  const items = JSON.parse(r.stdout).items as Item[];
  const get = (area: string, subject?: string) => items.find((i) => i.area === area && (!subject || i.subject.startsWith(subject)))!;
  assert.equal(get('upstream', 'relay').state, 'problem');
  assert.match(get('upstream', 'relay').detail, /refused our credentials: 535 5\.7\.139 Authentication unsuccessful, the user credentials were incorrect\.$/);
  assert.equal(get('spf', 'example.test via direct').state, 'problem');
  assert.match(get('spf', 'example.test via direct').detail, /"fail" for 203\.0\.113\.77.*add ip4:203\.0\.113\.77/);
  assert.equal(get('tls').state, 'problem');
  assert.match(get('tls').detail, /EXPIRED/);
  assert.equal(get('clock').state, 'problem');
  assert.match(get('clock').detail, /10 min ahead of 127\.0\.0\.1/);

  const down = writeConfig('down.yaml', { password: 'right-password', cert: 'soon.crt', relayPort: closedPort });
  const d = await runDoctor(['--config', down, '--no-clock']);
  assert.equal(d.code, 1);
  assert.match(d.stdout, /✗ upstream relay .*\n {4}127\.0\.0\.1:\d+ not reachable \((ESOCKET|ECONNECTION)\)/);
  assert.match(d.stdout, /! tls .*\n {4}expires in [45] day\(s\)/);
  assert.match(d.stdout, /· clock +clock\n {4}no --time-url/);
  assert.match(d.stdout, /· spf +example\.test via direct\n {4}.*give --public-ip/);
});

test('SPF path per upstream kind: Microsoft include found through nested includes, missing, DNS timeout', async () => {
  const client = createDnsClient({ servers: [{ host: dns.host, port: dns.port }], timeoutMs: 300, retries: 0 });
  assert.equal(sendingPathOf('smtp+starttls://smtp.office365.com:587').kind, 'microsoft365');
  assert.equal(sendingPathOf('graph://contoso.onmicrosoft.com/scanner@contoso.com').kind, 'microsoft365');
  assert.equal(sendingPathOf('connector://contoso.com').kind, 'relay-ip');
  assert.equal(sendingPathOf('smtp+starttls://smtp.isp.example:587').kind, 'smart-host');
  const m365 = sendingPathOf('smtp+starttls://smtp.office365.com:587');
  assert.equal((await checkSendingPath('nested.test', m365, client)).state, 'ok');
  const missing = await checkSendingPath('noms.test', m365, client);
  assert.equal(missing.state, 'problem');
  assert.match(missing.detail, /does not include spf\.protection\.outlook\.com/);
  assert.equal((await checkSendingPath('absent.test', m365, client)).state, 'problem');
  const slow = await checkSendingPath('slow.test', m365, client);
  assert.equal(slow.state, 'could-not-check');
  assert.match(slow.detail, /TIMEOUT/);
});

test('a listener with tlsProfile: legacy is named as accepting old TLS, LAN only; an intermediate one is not', async () => {
  httpSkewMs = 0;
  const config = writeConfig('legacy.yaml', { password: 'right-password', cert: 'good.crt' });
  writeFileSync(config, `listen:\n  - { address: 0.0.0.0, port: 2525, tlsProfile: legacy }\n  - { address: 127.0.0.1, port: 2526 }\n${(await import('node:fs')).readFileSync(config, 'utf8')}`);
  const r = await runDoctor(['--config', config, '--public-ip', '198.51.100.9', '--json', '--no-clock']);
  const items = (JSON.parse(r.stdout).items as Item[]).filter((i) => i.area === 'tls' && i.subject.startsWith('listener'));
  assert.deepEqual(items.map((i) => [i.subject, i.state]), [['listener 0.0.0.0:2525', 'warning']]);
  assert.match(items[0].detail, /accepts TLS 1\.0 and 1\.1 .*acceptable only on a LAN.*every address of this machine/);
});

test('credentials configured, server offers no AUTH: a problem, never "authenticated as"', async (t) => {
  // an open relay on the port the credentials were meant for: it would take the mail unauthenticated
  const open = new SMTPServer({ logger: false, disabledCommands: ['AUTH', 'STARTTLS'], authOptional: true, onData(stream, _s, cb) { stream.resume(); stream.on('end', () => cb(new Error('doctor must not send mail'))); } });
  await new Promise<void>((resolve) => open.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => open.close(resolve)));
  const file = path.join(dir, 'noauth.yaml');
  writeFileSync(file, [
    'mailroot: ./mailroot',
    'upstreams:',
    '  - name: isp',
    `    url: smtp://127.0.0.1:${(open.server.address() as { port: number }).port}`,
    '    username: scanner@example.test',
    '    password: right-password',
    '    timeout: 5',
    '',
  ].join('\n'));
  const r = await runDoctor(['--config', file, '--no-clock', '--json']);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  const item = (JSON.parse(r.stdout).items as Item[]).find((i) => i.area === 'upstream' && i.subject.startsWith('isp'))!;
  assert.equal(item.state, 'problem');
  assert.match(item.detail, /^127\.0\.0\.1:\d+ offered no AUTH in its EHLO reply/);
  assert.doesNotMatch(item.detail, /authenticated as/);
});
