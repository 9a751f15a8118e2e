// Header analysis on real-world-shaped samples (test/fixtures/headers): hop order and delays,
// TLS per hop, authentication results, Microsoft's anti-spam fields in words, and the verdict.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { analyzeHeaders, formatDuration } from '../../../src/diagnostics/headers/analyze.ts';
import { parseReceived } from '../../../src/diagnostics/headers/received.ts';
import { parseAuthenticationResults, parseReceivedSpf } from '../../../src/diagnostics/headers/auth-results.ts';
import { parseHeaderBlock, parseMailDate } from '../../../src/diagnostics/headers/parse.ts';

const fixture = (name: string): string => readFileSync(new URL(`../../fixtures/headers/${name}`, import.meta.url), 'utf8');

test('Microsoft 365, junked: hops oldest first with delays, plain-SMTP relay hop, spoofing verdict', () => {
  const a = analyzeHeaders(fixture('m365-junked.eml'));
  assert.equal(a.summary.subject, 'Scanned document – invoice');
  assert.deepEqual(a.hops.map((h) => h.by), [
    'printer-relay.contoso.local', 'AM4PEPF00027A6C.mail.protection.outlook.com', 'AM6P193CA0101.outlook.office365.com',
    'AM0PR02MB1234.eurprd02.prod.outlook.com', 'DB9PR02MB5678.eurprd02.prod.outlook.com',
  ]);
  assert.deepEqual(a.hops.map((h) => h.delayMs), [undefined, 152_000, 1000, 1000, 1000]);
  assert.equal(a.totalDelayMs, 155_000);
  assert.equal(a.sinceDateMs, 158_000); // Date 10:10:02 +0100 → last hop 09:12:40Z
  assert.deepEqual(a.hops.map((h) => h.tls), ['none', 'none', 'tls', 'tls', 'internal']);
  assert.deepEqual([a.hops[2].tlsVersion, a.hops[3].tlsVersion], ['TLS 1.3', 'TLS 1.2']);
  assert.equal(a.hops[1].fromIp, '203.0.113.5');
  assert.equal(a.hops[0].for, 'accounts@contoso.com');
  assert.deepEqual(a.auth, { spf: 'fail', dkim: 'none', dmarc: 'fail', arc: undefined, compauth: 'fail', compauthReason: '000', compauthMeaning: a.auth.compauthMeaning });
  assert.match(a.auth.compauthMeaning!, /failed DMARC/);
  assert.equal(a.antispam.scl, 5);
  const ff = Object.fromEntries(a.antispam.forefront.map((f) => [f.key, f]));
  assert.match(ff.SFV.meaning, /marked spam by spam filtering/);
  assert.match(ff.CAT.meaning, /spoofing/);
  assert.match(ff.IPV.meaning, /not on any IP reputation list/);
  assert.match(ff.PTR.meaning, /no reverse DNS/);
  assert.equal(ff.CIP.value, '203.0.113.5');
  assert.equal(ff.CTRY.value, 'NL');
  assert.equal(ff.H.value, 'printer-relay.contoso.local');
  assert.match(ff.SFP.meaning, /not documented/);
  assert.equal(a.verdict.junked, true);
  assert.match(a.verdict.line, /^Junked: Microsoft 365 treated it as spoofing \(CAT:SPOOF\).*compauth=fail reason=000.*SPF fail for 203\.0\.113\.5, no DKIM signature, DMARC fail, SCL 5, delivered to Junk Email \(dest:J\)$/);
  assert.ok(a.findings.some((f) => f.severity === 'warning' && /hop 2: printer-relay.contoso.local → .* without TLS/.test(f.message)));
  assert.ok(a.findings.some((f) => /hop 2 .* came 2 min 32 s after hop 1: the message waited at printer-relay\.contoso\.local/.test(f.message)));
  assert.deepEqual(a.antispam.exchange.map((f) => [f.key, f.value]), [['X-MS-Exchange-Organization-AuthAs', 'Anonymous']]);
  assert.ok(a.findings.some((f) => f.severity === 'warning' && /contoso\.com → contoso\.com message anonymously/.test(f.message)));
});

test('Microsoft 365, clean: internal mapi/HTTPS hops, TLS between front ends, not junked', () => {
  const a = analyzeHeaders(fixture('m365-clean.eml'));
  assert.equal(a.hops.length, 6);
  assert.deepEqual(a.hops.map((h) => h.delayMs), [undefined, 1000, 2000, 1000, 0, 1000]);
  assert.equal(a.totalDelayMs, 5000);
  assert.deepEqual(a.hops.map((h) => h.tls), ['internal', 'tls', 'tls', 'tls', 'tls', 'internal']);
  assert.ok(a.hops.every((h) => h.microsoft));
  assert.equal(a.authenticationResults[0].authservId, '');
  assert.deepEqual(a.authenticationResults[0].results.map((r) => `${r.method}=${r.result}`), ['spf=pass', 'dkim=pass', 'dmarc=pass', 'compauth=pass']);
  assert.equal(a.antispam.scl, 1);
  assert.equal(a.antispam.bcl, 0);
  assert.equal(a.verdict.junked, false);
  assert.equal(a.verdict.line, 'Not junked: SCL 1, SFV:NSPM, SPF pass, DKIM pass, DMARC pass');
  assert.deepEqual(a.findings.filter((f) => f.severity !== 'info'), []);
  assert.deepEqual(a.antispam.exchange, []);
});

test('Gmail: (PST) dates, SMTPS = TLS, ARC and Received-SPF, encoded subject', () => {
  const a = analyzeHeaders(fixture('gmail.eml'));
  assert.equal(a.summary.subject, 'Lunch? 🍕');
  assert.deepEqual(a.hops.map((h) => h.by), ['mx.google.com', '2002:a05:7300:5c8e:b0:15a:1234:abcd']);
  assert.equal(a.hops[0].time, Date.UTC(2025, 10, 3, 9, 23, 45));
  assert.deepEqual(a.hops.map((h) => h.delayMs), [undefined, 2000]);
  assert.equal(a.hops[0].tls, 'tls');
  assert.equal(a.hops[0].fromIp, '209.85.220.41');
  assert.equal(a.auth.arc, 'cv=none (i=1)');
  assert.equal(a.arcAuthenticationResults[0].instance, 1);
  assert.equal(a.arcAuthenticationResults[0].authservId, 'mx.google.com');
  assert.deepEqual([a.auth.spf, a.auth.dkim, a.auth.dmarc], ['pass', 'pass', 'pass']);
  assert.equal(a.receivedSpf[0].params['client-ip'], '209.85.220.41');
  assert.equal(a.verdict.junked, false);
  assert.equal(a.verdict.line, 'Not junked: SPF pass, DKIM pass, DMARC pass');
});

test('Postfix relay chain: clock skew as a negative delay, Postfix TLS comment, SpamAssassin verdict', () => {
  const a = analyzeHeaders(fixture('postfix-relay.eml'));
  assert.deepEqual(a.hops.map((h) => h.by), ['laptop.example.org', 'relay.example.org', 'mx.example.net', 'localhost', 'mx.example.net']);
  assert.deepEqual(a.hops.map((h) => h.delayMs), [undefined, 7000, -3000, 1000, 6000]);
  assert.equal(a.totalDelayMs, 11_000);
  assert.deepEqual(a.hops.map((h) => h.tls), ['unknown', 'none', 'tls', 'none', 'none']);
  assert.equal(a.hops[2].tlsCipher, 'TLS_AES_256_GCM_SHA384');
  assert.equal(a.hops[2].fromIp, '198.51.100.7');
  assert.ok(a.findings.some((f) => /hop 3 .* 3 s before the previous hop/.test(f.message)));
  assert.ok(!a.findings.some((f) => /localhost was sent without TLS/.test(f.message)), 'loopback hand-offs are not flagged');
  assert.deepEqual(a.antispam.spamAssassin?.tests?.slice(0, 2), ['BAYES_99=3.5', 'BAYES_999=0.2']);
  assert.equal(a.verdict.junked, true);
  assert.match(a.verdict.line, /^Junked: SpamAssassin scored it 7\.134 \(threshold 5\), rules: BAYES_99=3\.5.*; SPF softfail, no DKIM signature$/);
});

test('parsers: odd Received lines, AR with quoted reason and version, Received-SPF, dates', () => {
  const q = parseReceived('(qmail 12345 invoked from network); 3 Nov 2025 10:00:00 -0000');
  assert.equal(q.time, Date.UTC(2025, 10, 3, 10));
  assert.equal(q.from, undefined);
  const v6 = parseReceived('from mail.example.com (mail.example.com [IPv6:2001:db8::25]) by mx.example.net with ESMTPSA id x; Tue, 4 Nov 25 01:02:03 EST');
  assert.equal(v6.fromIp, '2001:db8::25');
  assert.equal(v6.tls, 'tls');
  assert.equal(v6.time, Date.UTC(2025, 10, 4, 6, 2, 3));
  const gmailSubmit = parseReceived('from [10.1.2.3] (host-10-1-2-3.example.net. [203.0.113.9]) by smtp.gmail.com with ESMTPSA id abc123 for <x@example.com> (version=TLS1_3 cipher=TLS_AES_256_GCM_SHA384 bits=256/256); Mon, 03 Nov 2025 01:23:45 -0800 (PST)');
  assert.deepEqual([gmailSubmit.fromIp, gmailSubmit.tls, gmailSubmit.tlsVersion, gmailSubmit.for], ['203.0.113.9', 'tls', 'TLS 1.3', 'x@example.com']);
  const qmailHelo = parseReceived('from unknown (HELO mail.example.com) (198.51.100.3) by mx.example.org with SMTP; 3 Nov 2025 10:00:00 -0000');
  assert.deepEqual([qmailHelo.from, qmailHelo.fromIp, qmailHelo.tls], ['unknown', '198.51.100.3', 'none']);
  const sendmail = parseReceived('(from root@localhost) by host.example.com (8.15.2/8.15.2/Submit) id 5A3A0B1C; Mon, 3 Nov 2025 11:00:00 +0100');
  assert.deepEqual([sendmail.from, sendmail.by, sendmail.id, sendmail.time], [undefined, 'host.example.com', '5A3A0B1C', Date.UTC(2025, 10, 3, 10)]);
  const mapi = parseReceived('from DM6PR11MB1234.namprd11.prod.outlook.com ([fe80::aaaa:bbbb:cccc:dddd]) by DM6PR11MB1234.namprd11.prod.outlook.com ([fe80::aaaa:bbbb:cccc:dddd%5]) with mapi id 15.20.8093.014; Mon, 3 Nov 2025 09:00:00 +0000');
  assert.deepEqual([mapi.fromIp, mapi.tls], ['fe80::aaaa:bbbb:cccc:dddd', 'internal']);
  assert.deepEqual(parseReceived('garbage without structure'), { raw: 'garbage without structure', tls: 'unknown', tlsEvidence: 'no "with" clause (a local hop, e.g. Postfix pickup)' });
  const ar = parseAuthenticationResults('mx.example.net 1; spf = pass smtp.mailfrom=a@b.example; dkim=fail reason="signature (body hash) did not verify" header.d=b.example; dmarc=fail (p=reject) header.from=b.example');
  assert.equal(ar.authservId, 'mx.example.net');
  assert.deepEqual(ar.results.map((r) => [r.method, r.result]), [['spf', 'pass'], ['dkim', 'fail'], ['dmarc', 'fail']]);
  assert.equal(ar.results[1].reason, 'signature (body hash) did not verify');
  assert.equal(ar.results[2].comment, 'p=reject');
  assert.deepEqual(parseAuthenticationResults('mx.example.net; none').results, []);
  const rs = parseReceivedSpf('SoftFail (mx: transitioning domain) client-ip=203.0.113.2; envelope-from="x@example.com"; helo=h;');
  assert.deepEqual([rs.result, rs.comment, rs.params['envelope-from'], rs.params.helo], ['softfail', 'mx: transitioning domain', 'x@example.com', 'h']);
  assert.equal(parseMailDate('Mon, 3 Nov 2025 09:12:37.123 +0000 (UTC)'), Date.UTC(2025, 10, 3, 9, 12, 37, 123));
  assert.equal(parseMailDate('not a date'), undefined);
  assert.deepEqual(parseHeaderBlock('From sender@x Mon Nov  3 10:00:00 2025\r\nSubject: a\r\n  b\r\nX: 1\r\n\r\nBody: no').map((f) => [f.key, f.value]), [['subject', 'a b'], ['x', '1']]);
  assert.equal(formatDuration(3_723_000), '1 h 2 min 3 s');
});

test('CLI: exit 1 when junked, 0 when clean, 2 on input that has no headers; --json is the analysis', () => {
  const run = (args: string[], input?: string) => spawnSync(process.execPath, ['bin/smarthost.js', 'headers', ...args], { encoding: 'utf8', timeout: 30_000, input });
  const junk = run(['test/fixtures/headers/m365-junked.eml']);
  assert.equal(junk.status, 1, junk.stderr);
  assert.match(junk.stdout, /Verdict: Junked: Microsoft 365 treated it as spoofing/);
  const clean = run(['-', '--json'], fixture('m365-clean.eml'));
  assert.equal(clean.status, 0, clean.stderr);
  assert.equal(JSON.parse(clean.stdout).verdict.junked, false);
  const none = run(['-'], 'just some text\nwithout headers\n');
  assert.equal(none.status, 2);
  assert.match(none.stderr, /holds no message headers/);
});
