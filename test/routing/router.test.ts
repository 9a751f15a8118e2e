import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseConfigText } from '../../src/config/load.ts';
import { createRouter, routingWarnings } from '../../src/routing/index.ts';
import { runCli } from '../helpers/cli.ts';

const YAML = `upstreams:
  - { name: contoso-smtp, url: 'smtp+starttls://smtp.office365.com', username: scanner@contoso.com, password: p }
  - { name: contoso-graph, url: 'graph://contoso.onmicrosoft.com/scanner@contoso.com', oauth: { clientId: c, clientSecret: s } }
  - { name: fabrikam, url: 'smtp+starttls://smtp.office365.com', username: relay@fabrikam.com, password: p }
  - { name: isp, url: 'smtp+starttls://mail.example.net' }
routes:
  - { name: contoso, upstreams: [contoso-smtp, contoso-graph] }
  - { name: fabrikam, upstreams: [fabrikam], sender: { mode: rewrite, rewriteTo: relay@fabrikam.com } }
  - { name: isp, upstreams: [isp] }
  - { name: lab, upstreams: [isp] }
routing:
  rules:
    - { users: [erp], route: fabrikam }
    - { clients: [10.9.0.0/16], senderDomains: [contoso.com], route: lab }
    - { senderDomains: [contoso.com], route: contoso }
    - { senders: ['alarm@plant.example', 'fabrikam.com'], route: fabrikam }
    - { fromDomains: [fabrikam.com], route: fabrikam }
    - { recipientDomains: [partner.example], route: isp }
  default: contoso
`;
const config = parseConfigText(YAML, '/tmp/r.yaml');
const router = createRouter(config);
const pick = (ctx: Partial<Parameters<typeof router.choose>[0]>) => router.choose({ mailFrom: '', recipients: ['x@contoso.com'], clientAddress: '192.0.2.1', ...ctx }).map((c) => [c.route, c.recipients.join(',')]);

test('first match wins; each kind of condition; all conditions of a rule must hold; default', () => {
  assert.deepEqual(pick({ mailFrom: 'scan@contoso.com' }), [['contoso', 'x@contoso.com']]);
  assert.deepEqual(pick({ mailFrom: 'scan@contoso.com', clientAddress: '10.9.1.2' }), [['lab', 'x@contoso.com']], 'client AND sender domain');
  assert.deepEqual(pick({ mailFrom: 'scan@contoso.com', user: 'ERP' }), [['fabrikam', 'x@contoso.com']], 'user rule comes first');
  assert.deepEqual(pick({ mailFrom: 'alarm@plant.example' }), [['fabrikam', 'x@contoso.com']], 'exact sender');
  assert.deepEqual(pick({ mailFrom: 'other@plant.example' }), [['contoso', 'x@contoso.com']], 'unmatched: default');
  assert.deepEqual(pick({ mailFrom: 'a@fabrikam.com' }), [['fabrikam', 'x@contoso.com']], 'bare domain in senders');
  assert.deepEqual(pick({ mailFrom: 'dev@printer.local', headerFrom: 'Boss@Fabrikam.com' }), [['fabrikam', 'x@contoso.com']], 'From: domain');
  const why = router.choose({ mailFrom: 'dev@printer.local', recipients: ['a@x.org'] })[0].why;
  assert.match(why, /no rule matched: routing\.default \(contoso\)/);
});

test('recipients needing different routes split the message, in order of first recipient', () => {
  const got = router.choose({ mailFrom: 'dev@printer.local', recipients: ['a@partner.example', 'b@contoso.com', 'c@PARTNER.example'], clientAddress: '192.0.2.1' });
  assert.deepEqual(got.map((c) => [c.route, c.recipients]), [['isp', ['a@partner.example', 'c@PARTNER.example']], ['contoso', ['b@contoso.com']]]);
  assert.match(got[0].why, /rule 6 \(recipient domain partner\.example\)/);
});

test('no routes configured: inactive, one implicit default route of every upstream', () => {
  const plain = createRouter(parseConfigText('upstreams:\n  - { name: a, url: "smtp://x" }\n  - { name: b, url: "smtp://y" }\n', '/tmp/p.yaml'));
  assert.equal(plain.active, false);
  assert.deepEqual(plain.choose({ mailFrom: 'a@b.c', recipients: ['x@y.z'] }).map((c) => [c.route, c.recipients]), [['default', ['x@y.z']]]);
  assert.deepEqual(plain.route('default')?.upstreams, ['a', 'b']);
});

test('config errors name the route or upstream that does not exist', () => {
  assert.throws(() => parseConfigText('upstreams:\n  - { name: a, url: "smtp://x" }\nroutes:\n  - { name: r, upstreams: [nope] }\n', '/tmp/e.yaml'), /no upstream named "nope"/);
  assert.throws(() => parseConfigText('upstreams:\n  - { name: a, url: "smtp://x" }\nrouting:\n  rules:\n    - { senderDomains: [a.b], route: ghost }\n', '/tmp/e.yaml'), /no route named "ghost"/);
});

test('senders rules that pick an upstream: config check explains how to move them once routing is on', () => {
  const c = parseConfigText(`${YAML}senders:\n  - { clients: [10.1.20.0/24], allow: ['*'], upstream: isp }\n`, '/tmp/s.yaml');
  const [w] = routingWarnings(c);
  assert.match(w, /senders\[0\]\.upstream \(isp\) chooses nothing once routing: is configured; move it to a rule: routing\.rules: - \{ clients: \[10\.1\.20\.0\/24\], route: ROUTE \}/);
  assert.deepEqual(routingWarnings(parseConfigText('upstreams:\n  - { name: a, url: "smtp://x" }\nsenders:\n  - { clients: [10.0.0.1], allow: ["*"], upstream: a }\n', '/tmp/s2.yaml')), [], 'without routing the old rules still choose');
});

test('20 rules cost microseconds per message (the accept path stays as fast)', () => {
  const rules = Array.from({ length: 20 }, (_, i) => `    - { senderDomains: [tenant${i}.example], recipientDomains: [dest${i}.example], route: r${i % 3} }`).join('\n');
  const c = parseConfigText(`upstreams:\n  - { name: a, url: "smtp://x" }\nroutes:\n  - { name: r0, upstreams: [a] }\n  - { name: r1, upstreams: [a] }\n  - { name: r2, upstreams: [a] }\nrouting:\n  rules:\n${rules}\n`, '/tmp/b.yaml');
  const r = createRouter(c);
  // the worst case: no rule matches, every rule is tried for each of 3 recipients
  const ctx = { mailFrom: 'scanner@nowhere.example', headerFrom: 'scanner@nowhere.example', recipients: ['a@x.org', 'b@y.org', 'c@z.org'], clientAddress: '192.0.2.7', user: 'mfp' };
  for (let i = 0; i < 2000; i++) r.choose(ctx);
  const n = 20_000;
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) r.choose(ctx);
  const us = Number(process.hrtime.bigint() - start) / 1000 / n;
  process.stdout.write(`# routing with 20 rules, 3 recipients, no match: ${us.toFixed(2)} µs per message\n`);
  assert.ok(us < 200, `${us} µs per message`);
});

test('smarthost route test prints the route chosen, why, and the split', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sh-route-'));
  try {
    const file = path.join(dir, 'smarthost.yaml');
    writeFileSync(file, YAML);
    const one = await runCli(['route', 'test', '--config', file, '--from', 'scan@contoso.com', '--to', 'alice@contoso.com']);
    assert.equal(one.code, 0, one.stderr);
    assert.match(one.stdout, /route contoso: rule 3 \(sender contoso\.com\)/);
    assert.match(one.stdout, /upstreams: {2}contoso-smtp → contoso-graph/);
    assert.match(one.stdout, /reports: {4}sent as scanner@contoso\.com/);
    const split = await runCli(['route', 'test', '--config', file, '--from', 'dev@printer.local', '--to', 'a@partner.example,b@contoso.com', '--client', '192.0.2.1']);
    assert.equal(split.code, 0, split.stderr);
    assert.match(split.stdout, /split into 2 parts/);
    assert.match(split.stdout, /route isp: rule 6 \(recipient domain partner\.example\)\n {2}recipients: a@partner\.example/);
    assert.match(split.stdout, /route contoso: no rule matched: routing\.default \(contoso\)\n {2}recipients: b@contoso\.com/);
    const user = await runCli(['route', 'test', '--config', file, '--from', 'x@contoso.com', '--to', 'a@b.c', '--user', 'erp']);
    assert.match(user.stdout, /route fabrikam: rule 1 \(user erp\)[\s\S]*sender: {5}rewrite \(as relay@fabrikam\.com\)/);
    const bad = await runCli(['route', 'test', '--config', file, '--from', 'x@y.z', '--to', 'a@b.c', '--client', 'nope']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /--client "nope" is not an IP address/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
