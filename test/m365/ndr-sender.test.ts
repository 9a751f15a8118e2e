import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseConfigText } from '../../src/config/load.ts';
import { ndrSenderFor, ndrSenderWarnings } from '../../src/m365/ndr-sender.ts';
import { runCli } from '../helpers/cli.ts';

const YAML = `upstreams:
  - { name: smtp, url: 'smtp+starttls://smtp.office365.com:587', username: scanner@contoso.com, password: p, sendAs: ['*@alerts.contoso.com'] }
  - { name: graph, url: 'graph://contoso.onmicrosoft.com/Scanner@contoso.com', oauth: { clientId: c, clientSecret: s } }
  - { name: mx, url: 'connector://contoso.com' }
  - { name: isp, url: 'smtp+starttls://mail.example.net' }
  - { name: own, url: 'smtp+starttls://smtp.office365.com:587', username: copier@contoso.com, password: p, ndr: { from: nobody@contoso.com } }
`;
const ups = parseConfigText(YAML, '/tmp/n.yaml').upstreams;

test('through SMTP AUTH and Graph a report is sent as the mailbox, envelope and From; elsewhere with <>', () => {
  assert.deepEqual(ndrSenderFor(ups[0], undefined, 'relay.test'), { mailFrom: 'scanner@contoso.com', from: 'scanner@contoso.com', pin: true, warning: undefined });
  assert.deepEqual(ndrSenderFor(ups[1], undefined, 'relay.test'), { mailFrom: 'scanner@contoso.com', from: 'scanner@contoso.com', pin: true, warning: undefined });
  assert.deepEqual(ndrSenderFor(ups[2], undefined, 'relay.test'), { mailFrom: '', from: 'MAILER-DAEMON@relay.test', pin: false });
  assert.deepEqual(ndrSenderFor(ups[3], 'postmaster@example.net', 'relay.test'), { mailFrom: '', from: 'postmaster@example.net', pin: false });
});

test('ndr.from is used when the mailbox may send as it; otherwise the mailbox, with a warning naming the fix', () => {
  const ok = ndrSenderFor(ups[0], 'noreply@alerts.contoso.com', 'relay.test');
  assert.equal(ok.mailFrom, 'noreply@alerts.contoso.com');
  assert.equal(ok.warning, undefined);
  const no = ndrSenderFor(ups[0], 'MAILER-DAEMON@relay.test', 'relay.test');
  assert.equal(no.mailFrom, 'scanner@contoso.com');
  assert.match(no.warning ?? '', /ndr\.from MAILER-DAEMON@relay\.test is not an address mailbox scanner@contoso\.com may send as through upstream smtp/);
  // the upstream's own ndr.from wins over the global one, and is checked the same way
  const own = ndrSenderFor(ups[4], 'postmaster@contoso.com', 'relay.test');
  assert.equal(own.mailFrom, 'copier@contoso.com');
  assert.match(own.warning ?? '', /upstreams\[own\]\.ndr\.from nobody@contoso\.com/);
  assert.deepEqual(ndrSenderWarnings(ups.slice(0, 4), undefined, 'relay.test'), []);
});

test('config check warns when ndr.from cannot be sent through a Microsoft 365 route, and not otherwise', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sh-ndr-'));
  try {
    const bad = path.join(dir, 'bad.yaml');
    writeFileSync(bad, `${YAML}ndr: { from: postmaster@contoso.com }\n`);
    const r = await runCli(['config', 'check', bad]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /warning: ndr\.from postmaster@contoso\.com is not an address mailbox scanner@contoso\.com may send as through upstream smtp/);
    assert.match(r.stdout, /mailbox scanner@contoso\.com may send as through upstream graph/);
    const good = path.join(dir, 'good.yaml');
    writeFileSync(good, `${YAML.split('\n').slice(0, 5).join('\n')}\nndr: { from: noreply@alerts.contoso.com }\n`);
    const g = await runCli(['config', 'check', good]);
    assert.equal(g.code, 0, g.stderr);
    assert.match(g.stdout, /warning: .*upstream graph/, 'graph has no Send As listed for alerts.contoso.com');
    assert.doesNotMatch(g.stdout, /through upstream smtp\b/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a route\'s own ndr.from is checked on the upstream its reports take', async () => {
  const { routeNdrWarnings } = await import('../../src/m365/ndr-sender.ts');
  const routes = [{ name: 'c', upstreams: ['smtp'], ndr: { from: 'postmaster@contoso.com' } }, { name: 'ok', upstreams: ['smtp'], ndr: { from: 'x@alerts.contoso.com' } }, { name: 'isp', upstreams: ['isp'], ndr: { from: 'a@b.c' } }];
  const w = routeNdrWarnings(ups, routes, 'relay.test');
  assert.equal(w.length, 1);
  assert.match(w[0], /^route c: ndr\.from postmaster@contoso\.com is not an address mailbox scanner@contoso\.com may send as/);
});
