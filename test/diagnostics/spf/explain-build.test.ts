// spf explain (terms in words, include tree, lookup counts) and spf build (presets, merge, lint
// refusal, 255-character strings, the wizard's questions) against a loopback DNS server.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { createInterface } from 'node:readline/promises';
import { explainSpf, renderExplanation } from '../../../src/diagnostics/spf/explain.ts';
import { buildSpf, splitTxt, parsePresetFile, promptBuildOptions, M365_INCLUDE } from '../../../src/diagnostics/spf/build.ts';
import { parseSpfArgument } from '../../../src/diagnostics/spf/lint.ts';
import { createDnsClient } from '../../../src/diagnostics/dns/client.ts';
import { startDnsServer, type TestDnsServer } from '../../helpers/dns-server.ts';

let server: TestDnsServer;
before(async () => {
  server = await startDnsServer({
    'spf.protection.outlook.com': [{ TXT: 'v=spf1 ip4:40.92.0.0/15 include:spfd.protection.outlook.com -all' }],
    'spfd.protection.outlook.com': [{ TXT: 'v=spf1 ip6:2a01:111:f400::/48 -all' }],
    'shortstraw.test': [{ TXT: 'v=spf1 include:spf.protection.outlook.com a:mail.suamae.test mx:uwmoeder.test ~all exp=why.shortstraw.test' }],
    'mail.suamae.test': [{ A: '198.51.100.25' }],
    'uwmoeder.test': [{ MX: [10, 'mx1.uwmoeder.test'] }],
    'mx1.uwmoeder.test': [{ A: '198.51.100.26' }, { AAAA: '2001:db8::26' }],
    'macro.test': [{ TXT: 'v=spf1 exists:%{ir}.%{l1r+-}._spf.%{d} ?all' }],
    'noinc.test': [{ TXT: 'v=spf1 include:nothing.test -all' }],
    'slow.test': ['TIMEOUT'],
    'twice.test': [{ TXT: 'v=spf1 -all' }, { TXT: 'v=spf1 ~all' }],
  });
});
after(async () => server.stop());
const client = () => createDnsClient({ servers: [{ host: server.host, port: server.port }], timeoutMs: 300, retries: 0 });

test('explain: every term in words, the include tree resolved, lookups counted', async () => {
  const e = await explainSpf({ domain: 'shortstraw.test' }, client());
  assert.equal(e.lookups, 4); // include, spfd include, a, mx
  const [version, include, a, mx, all, exp] = e.root.terms;
  assert.match(version.words, /SPF version 1/);
  assert.match(include.words, /servers authorized by the SPF record of spf\.protection\.outlook\.com/);
  assert.equal(include.child?.domain, 'spf.protection.outlook.com');
  assert.equal(include.child?.lookups, 1);
  assert.equal(include.child?.terms[2].child?.domain, 'spfd.protection.outlook.com');
  assert.match(a.words, /198\.51\.100\.25/);
  assert.match(mx.words, /mx1\.uwmoeder\.test/);
  assert.match(mx.words, /2001:db8::26/);
  assert.equal(all.result, 'softfail');
  assert.match(all.onMatch ?? '', /marks it/);
  assert.match(exp.words, /on fail/);
  const text = renderExplanation(e);
  assert.match(text, /DNS-querying terms: 4 of 10/);
  assert.match(text, /include → spf\.protection\.outlook\.com/);
});

test('explain: macros letter by letter; problems and DNS failures named', async () => {
  const m = await explainSpf({ domain: 'macro.test' }, client());
  assert.ok(m.root.terms[1].macros?.some((x) => /%\{ir\}: the client IP address .*reversed/.test(x)));
  assert.ok(m.root.terms[1].macros?.some((x) => /keep the rightmost 1 part/.test(x)));
  const n = await explainSpf({ domain: 'noinc.test' }, client());
  assert.match(n.root.terms[1].child?.problem ?? '', /no SPF record .*permerror/);
  const slow = await explainSpf({ domain: 'slow.test' }, client());
  assert.equal(slow.dnsErrors.length, 1);
  assert.match(renderExplanation(slow), /DNS FAILED \(not "missing"\): TXT slow\.test: TIMEOUT/);
  const rec = await explainSpf(parseSpfArgument('v=spf1 ipv4:192.0.2.1 -all'), client());
  assert.match(rec.root.terms[1].words, /not understood: .*did you mean "ip4"/);
});

test('build: the seed\'s records from flags', async () => {
  const r = await buildSpf({ m365: true, a: ['mail.suamae.test'], all: '-all' }, client());
  assert.equal(r.ok, true, r.refused.join('; '));
  assert.equal(r.record, `v=spf1 a:mail.suamae.test ${M365_INCLUDE} -all`);
  assert.equal(r.txt, `"v=spf1 a:mail.suamae.test ${M365_INCLUDE} -all"`);
  const ips = await buildSpf({ m365: true, ip4: ['194.78.56.8', '37.230.164.0/22'], ip6: ['2a01:4f8:d16:1355::2'] }, client());
  assert.equal(ips.record, `v=spf1 ip4:194.78.56.8 ip4:37.230.164.0/22 ip6:2a01:4f8:d16:1355::2 ${M365_INCLUDE} -all`);
});

test('build: merges with the published record, keeps its terms once', async () => {
  const r = await buildSpf({ merge: 'shortstraw.test', ip4: ['203.0.113.9'], m365: true }, client());
  assert.equal(r.ok, true, r.refused.join('; '));
  assert.equal(r.existing, 'v=spf1 include:spf.protection.outlook.com a:mail.suamae.test mx:uwmoeder.test ~all exp=why.shortstraw.test');
  assert.equal(r.record, 'v=spf1 include:spf.protection.outlook.com a:mail.suamae.test mx:uwmoeder.test exp=why.shortstraw.test ip4:203.0.113.9 ~all');
  const two = await buildSpf({ merge: 'twice.test', m365: true }, client());
  assert.equal(two.ok, false);
  assert.match(two.refused.join(), /2 SPF records/);
  const slow = await buildSpf({ merge: 'slow.test', m365: true }, client());
  assert.equal(slow.couldNotCheck, true);
});

test('build: refuses what would fail lint or is not a term', async () => {
  const bad = await buildSpf({ ip4: ['192.0.2.300'] }, client());
  assert.equal(bad.ok, false);
  assert.match(bad.refused.join(), /not an IPv4 address/);
  const none = await buildSpf({ include: ['nothing.test'] }, client());
  assert.equal(none.ok, false);
  assert.match(none.refused.join(), /SPF010/);
  const plus = await buildSpf({ m365: true, all: '+all' }, client());
  assert.equal(plus.ok, false);
  assert.match(plus.refused.join(), /SPF017/);
  const many = await buildSpf({ include: Array.from({ length: 11 }, () => 'spf.protection.outlook.com').map((d, i) => (i === 0 ? d : `x${i}.${d}`)) }, client());
  assert.equal(many.ok, false);
  assert.equal((await buildSpf({}, client())).ok, false);
});

test('build: long records split into strings of at most 255 characters at term boundaries', async () => {
  const ips = Array.from({ length: 30 }, (_, i) => `198.51.100.${i}`);
  const r = await buildSpf({ ip4: ips, m365: true }, client());
  assert.ok(r.record.length > 255);
  assert.ok(r.strings.length >= 2);
  assert.ok(r.strings.every((s) => Buffer.byteLength(s) <= 255));
  assert.equal(r.strings.join(''), r.record);
  assert.ok(r.strings.slice(0, -1).every((s) => s.endsWith(' ')));
  assert.deepEqual(splitTxt('x'.repeat(600)).map((s) => s.length), [255, 255, 90]);
  assert.deepEqual(parsePresetFile('# Telenet\ninclude:_spf.telenet-ops.be\nv=spf1 ip4:192.0.2.1 -all\n'), ['include:_spf.telenet-ops.be', 'ip4:192.0.2.1']);
});

test('build: the wizard asks the questions and its answers become a record', async () => {
  const input = new PassThrough();
  const output = new PassThrough();
  output.resume();
  const rl = createInterface({ input, output });
  const answers = ['contoso.test', 'n', 'y', '203.0.113.5', 'mail.suamae.test', '', '198.51.100.0/24, 2001:db8::/48', '', '~all'];
  const asked = promptBuildOptions(rl);
  for (const a of answers) {
    await new Promise((r) => setImmediate(r));
    input.write(`${a}\n`);
  }
  const options = await asked;
  rl.close();
  assert.deepEqual(options.ip4, ['203.0.113.5', '198.51.100.0/24']);
  assert.deepEqual(options.ip6, ['2001:db8::/48']);
  const r = await buildSpf(options, client());
  assert.equal(r.record, `v=spf1 ip4:203.0.113.5 ip4:198.51.100.0/24 ip6:2001:db8::/48 a:mail.suamae.test ${M365_INCLUDE} ~all`);
});
