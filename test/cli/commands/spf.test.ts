// The smarthost spf commands as a user runs them: the real CLI process, pointed with --resolver at a
// DNS server on loopback; readable output, --json shapes and exit codes (0 good, 1 problems,
// 2 usage, 3 could not check).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { startDnsServer, type TestDnsServer } from '../../helpers/dns-server.ts';
import { runCli } from '../../helpers/cli.ts';

const ROOT = path.resolve(import.meta.dirname, '../../..');
let server: TestDnsServer;
before(async () => {
  server = await startDnsServer({
    'contoso.test': [{ TXT: 'v=spf1 include:spf.protection.outlook.com ip4:203.0.113.0/28 -all exp=why.contoso.test' }, { TXT: 'MS=ms123' }],
    'why.contoso.test': [{ TXT: '%{i} may not send for %{d}' }],
    'spf.protection.outlook.com': [{ TXT: 'v=spf1 ip4:40.92.0.0/15 -all' }],
    'broken.test': [{ TXT: 'v=spf1 ipv4:203.0.113.5 +all' }],
    'slow.test': ['TIMEOUT'],
  });
});
after(async () => server.stop());

const cli = (...args: string[]) => runCli(args);
const R = (): string[] => ['--resolver', `127.0.0.1:${server.port}`, '--timeout', '300'];

test('spf check: pass, fail with the domain\'s explanation, Received-SPF, exit codes', async () => {
  const pass = await cli('spf', 'check', '40.92.1.2', 'contoso.test', '--helo', 'printer.contoso.test', ...R());
  assert.equal(pass.code, 0, pass.stderr);
  assert.match(pass.stdout, /→ PASS/);
  assert.match(pass.stdout.replace(/\n /g, ' '), /Received-SPF: Pass \(smarthost: domain of contoso\.test designates 40\.92\.1\.2 as permitted sender\) client-ip=40\.92\.1\.2; envelope-from="postmaster@contoso\.test"; helo=printer\.contoso\.test; receiver=smarthost; mechanism="include:spf\.protection\.outlook\.com"; identity=mailfrom\n/);
  const fail = await cli('spf', 'check', '198.51.100.7', 'contoso.test', '--sender', 'scanner@contoso.test', '--json', ...R());
  assert.equal(fail.code, 1);
  const j = JSON.parse(fail.stdout);
  assert.equal(j.result, 'fail');
  assert.equal(j.explanation, '198.51.100.7 may not send for contoso.test');
  assert.equal(j.mechanism, '-all');
  assert.match(j.receivedSpf, /^Received-SPF: Fail .*envelope-from="scanner@contoso\.test"; helo=contoso\.test; receiver=smarthost; mechanism=-all; identity=mailfrom$/);
  const slow = await cli('spf', 'check', '198.51.100.7', 'slow.test', ...R());
  assert.equal(slow.code, 3);
  assert.match(slow.stdout, /TEMPERROR/);
  assert.match(slow.stdout, /TIMEOUT/);
  const usage = await cli('spf', 'check', 'not-an-ip', 'contoso.test', ...R());
  assert.equal(usage.code, 2);
});

test('spf lint: findings with ids and positions; JSON shape; could-not-check', async () => {
  const bad = await cli('spf', 'lint', 'broken.test', ...R());
  assert.equal(bad.code, 1);
  assert.match(bad.stdout, /ERROR +SPF004 syntax: "ipv4:203\.0\.113\.5" at position 8/);
  assert.match(bad.stdout, /fix: did you mean "ip4"\?/);
  assert.match(bad.stdout, /\n {17}\^{16}\n/);
  const json = JSON.parse((await cli('spf', 'lint', 'broken.test', '--json', ...R())).stdout);
  assert.deepEqual(Object.keys(json), ['target', 'domain', 'record', 'strings', 'lookups', 'voidLookups', 'errors', 'warnings', 'couldNotCheck', 'findings']);
  assert.deepEqual(json.findings.map((f: { id: string }) => f.id), ['SPF004', 'SPF017']);
  assert.deepEqual(Object.keys(json.findings[0]), ['id', 'rule', 'severity', 'domain', 'message', 'term', 'start', 'end', 'fix']);
  const good = await cli('spf', 'lint', 'contoso.test', ...R());
  assert.equal(good.code, 0, good.stdout);
  assert.match(good.stdout, /0 error\(s\), 0 warning\(s\)/);
  const slow = await cli('spf', 'lint', 'slow.test', ...R());
  assert.equal(slow.code, 3);
  assert.match(slow.stdout, /SPF000/);
  assert.doesNotMatch(slow.stdout, /no SPF record/);
  const rec = await cli('spf', 'lint', 'v=spf1 ip4:192.0.2.1 ?all', ...R());
  assert.equal(rec.code, 1);
  assert.match(rec.stdout, /SPF018 neutral-all/);
});

test('spf explain: words, tree and count; JSON', async () => {
  const e = await cli('spf', 'explain', 'contoso.test', ...R());
  assert.equal(e.code, 0, e.stderr);
  assert.match(e.stdout, /include → spf\.protection\.outlook\.com: "v=spf1 ip4:40\.92\.0\.0\/15 -all"/);
  assert.match(e.stdout, /the IPv4 network 203\.0\.113\.0\/28: pass/);
  assert.match(e.stdout, /DNS-querying terms: 1 of 10/);
  const j = JSON.parse((await cli('spf', 'explain', 'contoso.test', '--json', ...R())).stdout);
  assert.equal(j.lookups, 1);
  assert.equal(j.root.terms[1].child.domain, 'spf.protection.outlook.com');
});

test('spf build: flags, merge, refusal, JSON', async () => {
  const b = await cli('spf', 'build', '--m365', '--ip4', '203.0.113.25', '--a', 'mail.contoso.test', '--all', '-all', ...R());
  assert.equal(b.code, 0, b.stdout); // mail.contoso.test has no address: a lint warning is noted, not a refusal
  assert.match(b.stdout, /note \(SPF021 no-address\)/);
  assert.match(b.stdout, /"v=spf1 ip4:203\.0\.113\.25 a:mail\.contoso\.test include:spf\.protection\.outlook\.com -all"/);
  const ok = await cli('spf', 'build', '--m365', '--ip4', '203.0.113.25', '--json', ...R());
  const j = JSON.parse(ok.stdout);
  assert.equal(ok.code, 0, ok.stdout);
  assert.equal(j.ok, true);
  assert.equal(j.txt, '"v=spf1 ip4:203.0.113.25 include:spf.protection.outlook.com -all"');
  const merged = JSON.parse((await cli('spf', 'build', '--merge', 'contoso.test', '--ip6', '2001:db8::25', '--json', ...R())).stdout);
  assert.equal(merged.record, 'v=spf1 include:spf.protection.outlook.com ip4:203.0.113.0/28 exp=why.contoso.test ip6:2001:db8::25 -all');
  const refused = await cli('spf', 'build', '--ip4', '203.0.113.300', ...R());
  assert.equal(refused.code, 1);
  assert.match(refused.stdout, /REFUSED/);
});

test('spf build on a terminal without arguments asks the wizard\'s questions (real pty via script(1))', async () => {
  const command = `${path.join(ROOT, 'node_modules/.bin/node')} ${path.join(ROOT, 'bin/smarthost.js')} spf build --resolver 127.0.0.1:${server.port} --timeout 300`;
  const child = spawn('script', ['-qc', command, '/dev/null'], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const steps: Array<[string, string]> = [
    ['Domain the record is for', 'contoso.test'], ['Merge with the record', 'n'], ['Microsoft 365 (Exchange Online)?', 'y'],
    ['deliver straight to recipients?', '203.0.113.5'], ['Other servers by host name', ''], ['Domains whose MX servers', ''],
    ['Other IPv4/IPv6 addresses', ''], ['Other providers that publish SPF', ''], ['Is that every server', '-all'],
  ];
  // answer each question once it has been asked (bounded wait per question)
  for (const [question, answer] of steps) {
    for (let waited = 0; !out.includes(question) && waited < 200; waited++) await new Promise((r) => setTimeout(r, 25));
    child.stdin.write(`${answer}\n`);
  }
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  clearTimeout(timer);
  const text = out.replace(/\r/g, '').replace(/\u001b\[[0-9;]*[A-Za-z]/g, '');
  assert.match(text, /Does the domain send through Microsoft 365/);
  assert.match(text, /Reject others \(-all\) or only mark them \(~all\)\?/);
  assert.match(text, /"v=spf1 ip4:203\.0\.113\.5 include:spf\.protection\.outlook\.com -all"/);
  assert.equal(code, 0, text);
});
