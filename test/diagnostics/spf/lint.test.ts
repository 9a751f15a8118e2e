// spf lint against zones served by a real DNS server on loopback: every rule fires where it should,
// with its id, severity and position, and a clean record has no findings.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { lintSpf, parseSpfArgument, LINT_RULES, type LintReport } from '../../../src/diagnostics/spf/lint.ts';
import { createDnsClient } from '../../../src/diagnostics/dns/client.ts';
import { startDnsServer, type TestDnsServer, type Zone } from '../../helpers/dns-server.ts';

const O365 = 'spf.protection.outlook.com';
const many = (n: number, prefix: string): string => Array.from({ length: n }, (_, i) => `a:h${i}.${prefix}`).join(' ');
export const LINT_ZONE: Zone = {
  [O365]: [{ TXT: 'v=spf1 ip4:40.92.0.0/15 ip6:2a01:111:f400::/48 -all' }],
  'ok.test': [{ TXT: 'v=spf1 ip4:192.0.2.0/24 include:spf.protection.outlook.com -all' }, { TXT: 'MS=ms1234' }, { MX: [0, 'ok-test.mail.protection.outlook.com'] }],
  'none.test': [{ TXT: 'hello' }],
  'multi.test': [{ TXT: 'v=spf1 -all' }, { TXT: 'v=spf1 ~all' }],
  'type99.test': [{ SPF: 'v=spf1 -all' }],
  'syntax.test': [{ TXT: 'v=spf1 ipv4:192.0.2.1 -all' }],
  'badaddr.test': [{ TXT: 'v=spf1 ip4:192.0.2.300 ip4:10.0.0.0/33 -all' }],
  'baddomain.test': [{ TXT: 'v=spf1 a:mail.example.123 -all' }],
  'lookups.test': [{ TXT: 'v=spf1 include:l1.test include:l2.test -all' }],
  'l1.test': [{ TXT: `v=spf1 ${many(5, 'ok.test')} -all` }],
  'l2.test': [{ TXT: `v=spf1 ${many(5, 'ok.test')} -all` }],
  ...Object.fromEntries(Array.from({ length: 5 }, (_, i) => [`h${i}.ok.test`, [{ A: `192.0.2.${i + 1}` }]])),
  'near.test': [{ TXT: `v=spf1 include:l1.test a:h0.ok.test a:h1.ok.test -all` }],
  'void.test': [{ TXT: 'v=spf1 a:nx1.void.test a:nx2.void.test a:nx3.void.test -all' }],
  'manymx.test': [...Array.from({ length: 11 }, (_, i) => ({ MX: [i, `h${i % 5}.ok.test`] as [number, string] })), { TXT: 'v=spf1 mx -all' }],
  'incnone.test': [{ TXT: 'v=spf1 include:nospf.test -all' }],
  'nospf.test': [{ TXT: 'not spf' }],
  'rednone.test': [{ TXT: 'v=spf1 redirect=nospf.test' }],
  'loop1.test': [{ TXT: 'v=spf1 include:loop2.test -all' }],
  'loop2.test': [{ TXT: 'v=spf1 include:loop1.test -all' }],
  'dupmod.test': [{ TXT: 'v=spf1 -all exp=e.test exp=e.test' }],
  'e.test': [{ TXT: 'Mail from %{i} is not allowed for %{d}' }],
  'redirall.test': [{ TXT: 'v=spf1 a -all redirect=ok.test' }, { A: '192.0.2.9' }],
  'afterall.test': [{ TXT: 'v=spf1 -all ip4:192.0.2.1' }],
  'noall.test': [{ TXT: 'v=spf1 ip4:192.0.2.1' }],
  'plusall.test': [{ TXT: 'v=spf1 +all' }],
  'neutral.test': [{ TXT: 'v=spf1 ?all' }],
  'soft.test': [{ TXT: 'v=spf1 ip4:192.0.2.1 ~all' }],
  'ptr.test': [{ TXT: 'v=spf1 ptr -all' }],
  'big.test': [{ TXT: `v=spf1 ${Array.from({ length: 40 }, (_, i) => `ip4:198.51.100.${i}`).join(' ')} -all` }],
  'dash.test': [{ TXT: 'v=spf1 ip4:192.0.2.1 \u2013all' }],
  'pmacro.test': [{ TXT: 'v=spf1 exists:%{p}.x.ok.test -all' }],
  'modfirst.test': [{ TXT: 'v=spf1 exp=e.test ip4:192.0.2.1 -all' }],
  'dup.test': [{ TXT: 'v=spf1 include:ok.test include:ok.test ip4:192.0.2.1 ip4:192.0.2.1 -all' }],
  'expbad.test': [{ TXT: 'v=spf1 -all exp=noexp.test' }],
  'senderid.test': [{ TXT: 'spf2.0/pra ip4:192.0.2.1 -all' }, { TXT: 'v=spf1 ip4:192.0.2.1 -all' }],
  'modtypo.test': [{ TXT: 'v=spf1 include=ok.test -all' }],
  'tenant.test': [{ TXT: 'v=spf1 ip4:192.0.2.1 -all' }, { MX: [0, 'tenant-test.mail.protection.outlook.com'] }],
  'softdmarc.test': [{ TXT: 'v=spf1 ip4:192.0.2.1 ~all' }],
  '_dmarc.softdmarc.test': [{ TXT: 'v=DMARC1; p=reject; rua=mailto:d@softdmarc.test' }],
  'slow.test': ['TIMEOUT'],
  'incslow.test': [{ TXT: 'v=spf1 include:slow.test -all' }],
};

let server: TestDnsServer;
before(async () => { server = await startDnsServer(LINT_ZONE); });
after(async () => server.stop());
const lint = (target: string): Promise<LintReport> => lintSpf(parseSpfArgument(target), createDnsClient({ servers: [{ host: server.host, port: server.port }], timeoutMs: 300, retries: 0 }));
const fired = new Set<string>();
const expectRule = async (target: string, rule: keyof typeof LINT_RULES, check?: (r: LintReport) => void): Promise<void> => {
  const report = await lint(target);
  const f = report.findings.find((x) => x.rule === rule);
  assert.ok(f, `${target}: expected ${rule}, got ${report.findings.map((x) => x.rule).join(', ') || 'nothing'}`);
  assert.equal(f.id, LINT_RULES[rule][0]);
  assert.equal(f.severity, LINT_RULES[rule][1]);
  assert.ok(f.message.length > 10);
  fired.add(rule);
  check?.(report);
};

test('a clean Microsoft 365 record has no errors or warnings', async () => {
  const r = await lint('ok.test');
  assert.deepEqual(r.findings.filter((f) => f.severity !== 'info'), []);
  assert.equal(r.lookups, 1);
  assert.equal(r.couldNotCheck, false);
});

test('record rules', async () => {
  await expectRule('none.test', 'no-record');
  await expectRule('multi.test', 'multiple-records');
  await expectRule('type99.test', 'type-spf-record');
  await expectRule('syntax.test', 'syntax', (r) => {
    const f = r.findings.find((x) => x.rule === 'syntax')!;
    assert.equal(f.start, 7);
    assert.equal(f.term, 'ipv4:192.0.2.1');
    assert.match(f.fix ?? '', /ip4/);
  });
  await expectRule('badaddr.test', 'bad-address', (r) => assert.equal(r.findings.filter((x) => x.rule === 'bad-address').length, 2));
  await expectRule('baddomain.test', 'bad-domain');
  await expectRule('dupmod.test', 'duplicate-modifier');
  await expectRule('redirall.test', 'redirect-with-all');
  await expectRule('afterall.test', 'after-all');
  await expectRule('noall.test', 'no-all');
  await expectRule('plusall.test', 'plus-all');
  await expectRule('neutral.test', 'neutral-all');
  await expectRule('soft.test', 'softfail-all', (r) => assert.match(r.findings.find((f) => f.rule === 'softfail-all')!.message, /no enforcing DMARC policy/));
  await expectRule('softdmarc.test', 'softfail-all', (r) => assert.match(r.findings.find((f) => f.rule === 'softfail-all')!.message, /DMARC p=reject/));
  await expectRule('tenant.test', 'm365-include-missing');
  assert.ok(!(await lint('ok.test')).findings.some((f) => f.rule === 'm365-include-missing'));
  await expectRule('ptr.test', 'ptr');
  await expectRule('dash.test', 'bad-characters');
  await expectRule('pmacro.test', 'p-macro');
  await expectRule('modfirst.test', 'modifier-first');
  await expectRule('dup.test', 'duplicate');
  await expectRule('senderid.test', 'sender-id');
  await expectRule('modtypo.test', 'modifier-typo');
});

test('rules that follow includes and count lookups', async () => {
  await expectRule('lookups.test', 'too-many-lookups', (r) => assert.equal(r.lookups, 12));
  await expectRule('near.test', 'near-lookup-limit', (r) => assert.equal(r.lookups, 8));
  await expectRule('void.test', 'too-many-void-lookups', (r) => assert.equal(r.voidLookups, 3));
  await expectRule('void.test', 'no-address');
  await expectRule('manymx.test', 'too-many-mx');
  await expectRule('incnone.test', 'include-without-spf');
  await expectRule('rednone.test', 'redirect-without-spf');
  await expectRule('loop1.test', 'loop');
  await expectRule('expbad.test', 'exp-unusable');
  await expectRule('big.test', 'too-large');
});

test('records given as text: long strings, strings joined without a space', async () => {
  await expectRule(`v=spf1 ${Array.from({ length: 30 }, (_, i) => `ip4:198.51.100.${i}`).join(' ')} -all`, 'long-string');
  await expectRule('"v=spf1 ip4:192.0.2.1" "include:ok.test -all"', 'split-without-space', (r) => {
    assert.equal(r.record, 'v=spf1 ip4:192.0.2.1include:ok.test -all');
  });
  const fine = await lint('"v=spf1 ip4:192.0.2.1 " "include:ok.test -all"');
  assert.equal(fine.errors, 0);
});

test('a DNS timeout is "could not check", never "no record"', async () => {
  await expectRule('slow.test', 'dns-unavailable', (r) => {
    assert.equal(r.couldNotCheck, true);
    assert.ok(!r.findings.some((f) => f.rule === 'no-record'));
  });
  const r = await lint('incslow.test');
  assert.equal(r.couldNotCheck, true);
  assert.ok(!r.findings.some((f) => f.rule === 'include-without-spf'));
});

test('every lint rule is exercised above', () => {
  assert.deepEqual(Object.keys(LINT_RULES).filter((r) => !fired.has(r)), []);
});

test('a macro error is pointed at exactly', async () => {
  const r = await lint('v=spf1 exists:%{i}.%{z}.example.com -all');
  const f = r.findings.find((x) => x.rule === 'syntax')!;
  assert.equal(f.start, 'v=spf1 exists:%{i}.'.length);
  assert.match(f.message, /position 20: .*"z" is not a macro letter/);
  const m = await lint('v=spf1 -all exp=%{d}.%');
  assert.equal(m.findings.find((x) => x.rule === 'syntax')!.start, 'v=spf1 -all exp=%{d}.'.length);
});
