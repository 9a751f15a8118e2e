// Received-SPF and Authentication-Results headers: pyspf's own header examples (test.yml from
// Debian's python3-spf, served by the loopback DNS server), and folding.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { checkHost } from '../../../src/diagnostics/spf/evaluate.ts';
import { receivedSpfHeader, receivedSpfValue, authenticationResultsSpf, quoteValue } from '../../../src/diagnostics/spf/received.ts';
import { createDnsClient } from '../../../src/diagnostics/dns/client.ts';
import { startDnsServer, type TestDnsServer, type Zone } from '../../helpers/dns-server.ts';

interface HeaderCase { id: string; host: string; helo: string; mailfrom: string; receiver: string; header: string; zone: Zone }

function headerCases(): HeaderCase[] {
  const debian = '/usr/share/doc/python3-spf/test.yml.gz';
  const shared = path.resolve(import.meta.dirname, '../../../../shared/conformance/spf/pyspf-test.yml');
  const text = existsSync(debian) ? gunzipSync(readFileSync(debian)).toString('utf8') : readFileSync(shared, 'utf8');
  const out: HeaderCase[] = [];
  for (const doc of parseAllDocuments(text)) {
    const data = doc.toJS() as { tests: Record<string, Record<string, string>>; zonedata: Zone } | null;
    for (const [id, t] of Object.entries(data?.tests ?? {})) {
      if (t.header) out.push({ id, host: t.host, helo: t.helo, mailfrom: t.mailfrom, receiver: t.receiver, header: t.header.replace(/\s+/g, ' ').trim(), zone: data!.zonedata });
    }
  }
  return out;
}

let server: TestDnsServer;
before(async () => { server = await startDnsServer({}); });
after(async () => server.stop());

test('pyspf test.yml header examples', async () => {
  const cases = headerCases();
  assert.equal(cases.length, 3);
  const client = createDnsClient({ servers: [{ host: server.host, port: server.port }], timeoutMs: 300, retries: 0 });
  for (const c of cases) {
    server.setZone(c.zone);
    const o = await checkHost({ ip: c.host, sender: c.mailfrom, helo: c.helo, receiver: c.receiver }, client);
    const ours = receivedSpfValue(o);
    if (o.result !== 'permerror') {
      assert.equal(ours, c.header, c.id);
      continue;
    }
    // permerror: our reason is our own words; everything else must match
    const fields = (h: string): string => h.slice(h.indexOf(' client-ip=')).replace(/ problem=[^;]*;/, '');
    assert.equal(ours.split(' ')[0], c.header.split(' ')[0], c.id);
    assert.ok(ours.startsWith(`PermError (${c.receiver}: permanent error in processing domain of ${o.domain}: `), ours);
    assert.equal(fields(ours), fields(c.header), c.id);
    assert.equal(/ problem=/.test(ours), / problem=/.test(c.header), `${c.id}: problem= present in both`);
  }
});

test('header folding, quoting and Authentication-Results', async () => {
  const s = await startDnsServer({ 'example.com': [{ TXT: 'v=spf1 ip4:192.0.2.0/24 -all exp=why.example.com' }], 'why.example.com': [{ TXT: '%{i} is not one of %{d}\'s servers' }] });
  try {
    const client = createDnsClient({ servers: [{ host: s.host, port: s.port }], timeoutMs: 300 });
    const fail = await checkHost({ ip: '203.0.113.2', sender: 'mail@example.com', helo: 'printer.local', receiver: 'relay.example.net' }, client);
    assert.equal(fail.result, 'fail');
    assert.equal(fail.explanation, "203.0.113.2 is not one of example.com's servers");
    const header = receivedSpfHeader(fail);
    assert.ok(header.split('\r\n').every((line) => line.length <= 78), header);
    assert.equal(header.replace(/\r\n /g, ' '), 'Received-SPF: Fail (relay.example.net: domain of example.com does not designate 203.0.113.2 as permitted sender) client-ip=203.0.113.2; envelope-from="mail@example.com"; helo=printer.local; receiver=relay.example.net; mechanism=-all; identity=mailfrom');
    assert.equal(authenticationResultsSpf(fail, 'relay.example.net'), 'Authentication-Results: relay.example.net; spf=fail (relay.example.net: domain of example.com does not designate 203.0.113.2 as permitted sender) smtp.mailfrom=example.com');
    const helo = await checkHost({ ip: '192.0.2.7', sender: '', helo: 'example.com' }, client);
    assert.equal(helo.identity, 'helo');
    assert.match(receivedSpfValue(helo), /^Pass \(unknown: domain of example\.com designates 192\.0\.2\.7 as permitted sender\) client-ip=192\.0\.2\.7; helo=example\.com; receiver=unknown; mechanism="ip4:192\.0\.2\.0\/24"; identity=helo$/);
    assert.equal(quoteValue('a"b'), '"a\\"b"');
  } finally {
    await s.stop();
  }
});
