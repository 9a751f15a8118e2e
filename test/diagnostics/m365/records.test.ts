// `dns m365` against a real DNS server on loopback (test/helpers/dns-server.ts) serving zones in
// which every Microsoft 365 record is present, missing or wrong, plus timeouts and SERVFAIL.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startDnsServer, type TestDnsServer, type Zone } from '../../helpers/dns-server.ts';
import { createDnsClient } from '../../../src/diagnostics/dns/client.ts';
import { checkM365Dns, type M365DnsReport } from '../../../src/diagnostics/m365/records.ts';
import { startServfailServer } from './servfail-server.ts';
import { runCli } from '../../helpers/cli.ts';

const SOA = (d: string) => ({ SOA: [`ns1.${d}`, `hostmaster.${d}`, 2025110301, 3600, 600, 86400, 300] as [string, string, number, number, number, number, number] });

const ZONE: Zone = {
  // everything right (old DKIM form, legacy MX form, all legacy records)
  'good.test': [SOA('good.test'), { TXT: 'MS=ms12345678' }, { TXT: 'v=spf1 include:spf.protection.outlook.com -all' }, { MX: [0, 'good-test.mail.protection.outlook.com'] }],
  'autodiscover.good.test': [{ CNAME: 'autodiscover.outlook.com' }],
  'selector1._domainkey.good.test': [{ CNAME: 'selector1-good-test._domainkey.goodtenant.onmicrosoft.com' }],
  'selector2._domainkey.good.test': [{ CNAME: 'selector2-good-test._domainkey.goodtenant.onmicrosoft.com' }],
  '_dmarc.good.test': [{ TXT: 'v=DMARC1; p=reject; rua=mailto:dmarc@good.test' }],
  'sip.good.test': [{ CNAME: 'sipdir.online.lync.com' }],
  'lyncdiscover.good.test': [{ CNAME: 'webdir.online.lync.com' }],
  '_sip._tls.good.test': [{ SRV: [100, 1, 443, 'sipdir.online.lync.com'] }],
  '_sipfederationtls._tcp.good.test': [{ SRV: [100, 1, 5061, 'sipfed.online.lync.com'] }],
  'enterpriseregistration.good.test': [{ CNAME: 'enterpriseregistration.windows.net' }],
  'enterpriseenrollment.good.test': [{ CNAME: 'enterpriseenrollment-s.manage.microsoft.com' }],

  // new forms: mx.microsoft MX and dkim.mail.microsoft DKIM; no legacy records (fine: optional)
  'new.test': [SOA('new.test'), { TXT: 'v=spf1 ip4:203.0.113.5 include:spf.protection.outlook.com ~all' }, { MX: [0, 'new-test.j-v1.mx.microsoft'] }],
  'autodiscover.new.test': [{ CNAME: 'autodiscover.outlook.com' }],
  'selector1._domainkey.new.test': [{ CNAME: 'selector1-new-test._domainkey.newtenant.r-v1.dkim.mail.microsoft' }],
  'selector2._domainkey.new.test': [{ CNAME: 'selector2-new-test._domainkey.newtenant.r-v1.dkim.mail.microsoft' }],
  '_dmarc.new.test': [{ TXT: 'v=DMARC1; p=none' }],

  // everything wrong
  'bad.test': [SOA('bad.test'), { TXT: 'MS=ms99999999' }, { TXT: 'v=spf1 include:spf.protection.outlook.com -all' }, { TXT: 'v=spf1 mx -all' }, { MX: [0, 'bad-test.mail.protection.outlook.com'] }, { MX: [10, 'mail.bad.test'] }],
  'autodiscover.bad.test': [{ A: '192.0.2.25' }],
  'selector1._domainkey.bad.test': [{ CNAME: 'selector1-bad-test._domainkey.othertenant.onmicrosoft.com' }],
  'selector2._domainkey.bad.test': [{ TXT: 'v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA' }],
  '_dmarc.bad.test': [{ TXT: 'v=DMARC1; rua=mailto:x@bad.test' }],
  'sip.bad.test': [{ CNAME: 'sipdir.example.net' }],
  '_sipfederationtls._tcp.bad.test': [{ SRV: [100, 1, 5061, 'sipfed.example.net'] }],
  'msoid.bad.test': [{ CNAME: 'clientconfig.partner.microsoftonline-p.net.cn' }],

  // retired MX, SPF without Microsoft, +all variant elsewhere
  'old.test': [SOA('old.test'), { TXT: 'v=spf1 a mx ~all' }, { MX: [10, 'mail.eo.outlook.com'] }],
  'open.test': [SOA('open.test'), { TXT: 'v=spf1 include:spf.protection.outlook.com +all' }, { MX: [0, 'mail.open.test'] }],

  // nothing at all but the SOA
  'empty.test': [SOA('empty.test')],

  // the apex TXT times out; the rest answers
  'slow.test': [SOA('slow.test'), 'TIMEOUT'],
};
// slow.test: MX is present, TXT questions get no reply
ZONE['slow.test'] = [SOA('slow.test'), { MX: [0, 'slow-test.mail.protection.outlook.com'] }, 'TIMEOUT'];

let server: TestDnsServer;
before(async () => { server = await startDnsServer(ZONE); });
after(async () => { await server.stop(); });

const client = () => createDnsClient({ servers: [{ host: server.host, port: server.port }], timeoutMs: 300, retries: 0 });
const byId = (r: M365DnsReport) => Object.fromEntries(r.checks.map((c) => [c.id, c]));

test('all present (legacy MX and DKIM forms, every optional record)', async () => {
  const r = await checkM365Dns('Good.Test.', client(), { verification: 'MS=ms12345678', tenantPrefix: 'goodtenant' });
  assert.equal(r.domain, 'good.test');
  assert.deepEqual(r.checks.filter((c) => c.state !== 'present').map((c) => [c.id, c.state]), [['msoid', 'missing']]);
  assert.equal(r.summary.problems, 0);
  assert.equal(r.summary.couldNotCheck, 0);
  const c = byId(r);
  assert.deepEqual(c.mx.found, ['0 good-test.mail.protection.outlook.com']);
  assert.deepEqual(c['sip-tls'].found, ['100 1 443 sipdir.online.lync.com']);
  assert.match(c.dmarc.detail, /p=reject/);
});

test('new forms: *.mx.microsoft MX and dkim.mail.microsoft targets; missing optional records are no problem', async () => {
  const r = await checkM365Dns('new.test', client(), { tenantPrefix: 'newtenant' });
  const c = byId(r);
  assert.equal(c.mx.state, 'present');
  assert.match(c.mx.detail, /mx\.microsoft/);
  assert.equal(c['dkim-selector1'].state, 'present');
  assert.equal(c['dkim-selector2'].state, 'present');
  assert.equal(c.verification.state, 'missing');
  assert.equal(c.verification.problem, false, 'verification is only needed while adding the domain');
  for (const id of ['sip', 'lyncdiscover', 'sip-tls', 'sipfederation', 'enterpriseregistration', 'enterpriseenrollment']) {
    assert.equal(c[id].state, 'missing');
    assert.equal(c[id].problem, false, id);
  }
  assert.match(c.dmarc.detail, /monitoring only/);
  assert.equal(r.summary.problems, 0);
  // With the wrong tenant the DKIM targets no longer match.
  const other = byId(await checkM365Dns('new.test', client(), { tenantPrefix: 'someoneelse' }));
  assert.equal(other['dkim-selector1'].state, 'wrong');
});

test('wrong records: each with what was found and the fix', async () => {
  const r = await checkM365Dns('bad.test', client(), { verification: 'MS=ms12345678', tenantPrefix: 'badtenant' });
  const c = byId(r);
  const states = Object.fromEntries(r.checks.map((x) => [x.id, x.state]));
  assert.deepEqual(states, {
    verification: 'wrong', mx: 'wrong', autodiscover: 'wrong', spf: 'wrong', 'dkim-selector1': 'wrong', 'dkim-selector2': 'wrong', dmarc: 'wrong',
    sip: 'wrong', lyncdiscover: 'missing', 'sip-tls': 'missing', sipfederation: 'wrong', enterpriseregistration: 'missing', enterpriseenrollment: 'missing', msoid: 'wrong',
  });
  assert.deepEqual(c.verification.found, ['MS=ms99999999']);
  assert.match(c.mx.detail, /also lists mail\.bad\.test/);
  assert.match(c.mx.fix!, /remove the other MX records \(mail\.bad\.test\)/);
  assert.deepEqual(c.autodiscover.found, ['A 192.0.2.25']);
  assert.match(c.autodiscover.fix!, /replace the A record with CNAME autodiscover → autodiscover\.outlook\.com/);
  assert.equal(c.spf.found.length, 2);
  assert.match(c.spf.detail, /more than one SPF record/);
  assert.match(c['dkim-selector1'].detail, /not Microsoft 365's DKIM key/);
  assert.match(c['dkim-selector2'].detail, /DKIM key of another signer/);
  assert.match(c.dmarc.detail, /no valid p= tag/);
  assert.match(c.msoid.detail, /sign-in/);
  assert.equal(r.summary.problems, 10);
});

test('missing records, retired MX, SPF without Microsoft, +all', async () => {
  const empty = byId(await checkM365Dns('empty.test', client()));
  for (const id of ['mx', 'autodiscover', 'spf', 'dkim-selector1', 'dkim-selector2', 'dmarc']) {
    assert.equal(empty[id].state, 'missing', id);
    assert.equal(empty[id].problem, true, id);
    assert.ok(empty[id].fix, id);
  }
  assert.match(empty.mx.fix!, /MX @ empty-test\.mail\.protection\.outlook\.com priority 0/);
  const old = byId(await checkM365Dns('old.test', client()));
  assert.equal(old.mx.state, 'wrong');
  assert.match(old.mx.detail, /451 4\.4\.62/);
  assert.equal(old.spf.state, 'wrong');
  assert.match(old.spf.detail, /does not include spf\.protection\.outlook\.com/);
  const open = byId(await checkM365Dns('open.test', client()));
  assert.equal(open.spf.state, 'wrong');
  assert.match(open.spf.detail, /\+all/);
  assert.equal(open.mx.state, 'wrong');
  assert.match(open.mx.detail, /points elsewhere/);
});

test('a DNS timeout is "could not check", never "missing"', async () => {
  const r = await checkM365Dns('slow.test', client());
  const c = byId(r);
  assert.equal(c.mx.state, 'present');
  assert.equal(c.spf.state, 'could-not-check');
  assert.equal(c.verification.state, 'could-not-check');
  assert.match(c.spf.detail, /timeout/i);
  assert.equal(c.spf.problem, false);
});

test('SERVFAIL everywhere: every record could-not-check, exit code 3', async () => {
  const bad = await startServfailServer();
  try {
    const r = await checkM365Dns('good.test', createDnsClient({ servers: [bad], timeoutMs: 300, retries: 0 }));
    assert.ok(r.checks.every((x) => x.state === 'could-not-check'), JSON.stringify(r.checks.map((x) => x.state)));
    assert.match(r.checks[0].detail, /SERVFAIL/);
    assert.equal(r.summary.problems, 0);
    const cli = await runCli(['dns', 'm365', 'good.test', '--resolver', `${bad.host}:${bad.port}`, '--timeout', '300']);
    assert.equal(cli.code, 3, cli.stderr);
    assert.match(cli.stdout, /COULD NOT CHECK/);
  } finally {
    await bad.stop();
  }
});

test('CLI: exit 0 when all good, 1 with problems; --json is the report', async () => {
  const good = await runCli(['dns', 'm365', 'good.test', '--resolver', `127.0.0.1:${server.port}`, '--verification', 'MS=ms12345678', '--timeout', '300', '--json']);
  assert.equal(good.code, 0, good.stderr);
  assert.equal(JSON.parse(good.stdout).summary.problems, 0);
  const bad = await runCli(['dns', 'm365', 'bad.test', '--resolver', `127.0.0.1:${server.port}`, '--timeout', '300']);
  assert.equal(bad.code, 1, bad.stderr);
  assert.match(bad.stdout, /✗ WRONG\s+MX \(inbound mail\)/);
  assert.match(bad.stdout, /fix: {6}remove the other MX records/);
});


test('domain names: IDN to A-labels, nonsense refused with a usage error', async () => {
  const { normalizeDomain } = await import('../../../src/diagnostics/m365/records.ts');
  assert.equal(normalizeDomain('Bücher.Example.'), 'xn--bcher-kva.example');
  assert.throws(() => normalizeDomain('not a domain'), /is not a domain name/);
  assert.throws(() => normalizeDomain('localhost'), /is not a domain name/);
});
