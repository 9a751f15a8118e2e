// The DNS client against two real servers on loopback: our zone-literal server (every answer shape,
// timeouts, truncation → TCP, odd names) and Debian's NSD serving a zone file.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { createDnsClient, recordsOf, parseServer, collectResolver, badNameReason } from '../../../src/diagnostics/dns/client.ts';
import { startDnsServer, type TestDnsServer } from '../../helpers/dns-server.ts';
import { startNsd, type NsdServer } from '../../helpers/nsd.ts';

let server: TestDnsServer;
const long = Array.from({ length: 40 }, (_, i) => `ip4:192.0.2.${i}`).join(' ');

before(async () => {
  server = await startDnsServer({
    'contoso.test': [
      { TXT: ['v=spf1 include:spf.protection.outlook.com ', '-all'] },
      { TXT: 'MS=ms12345678' },
      { MX: [0, 'contoso-test.mail.protection.outlook.com'] },
      { A: '192.0.2.10' },
      { AAAA: '2001:db8::10' },
      { NS: 'ns1.contoso.test' },
      { SOA: ['ns1.contoso.test', 'hostmaster.contoso.test', 2026112501, 3600, 600, 86400, 60] },
    ],
    'autodiscover.contoso.test': [{ CNAME: 'autodiscover.outlook.com' }],
    'autodiscover.outlook.com': [{ A: '192.0.2.99' }],
    '_sip._tls.contoso.test': [{ SRV: [100, 1, 443, 'sipdir.online.lync.com'] }],
    '10.2.0.192.in-addr.arpa': [{ PTR: 'mail.contoso.test' }],
    'big.contoso.test': [{ TXT: `v=spf1 ${long} -all` }],
    'slow.contoso.test': ['TIMEOUT'],
    'half.contoso.test': [{ TXT: 'v=spf1 -all' }, 'TIMEOUT'],
    'foo:bar/baz.contoso.test': [{ A: '192.0.2.11' }],
    'macro%percent  space%20url-space.contoso.test': [{ TXT: 'odd' }],
    'spf99.contoso.test': [{ SPF: 'v=spf1 a -all' }],
  });
});
after(async () => server.stop());

const client = () => createDnsClient({ servers: [{ host: server.host, port: server.port }], timeoutMs: 300, retries: 0 });

test('TXT: character-strings kept and joined with nothing between them', async () => {
  const a = await client().query('contoso.test', 'TXT');
  assert.equal(a.rcode, 'NOERROR');
  assert.equal(a.authoritative, true);
  const txt = recordsOf(a, 'TXT');
  assert.equal(txt.length, 2);
  assert.deepEqual(txt[0].strings, ['v=spf1 include:spf.protection.outlook.com ', '-all']);
  assert.equal(txt[0].data, 'v=spf1 include:spf.protection.outlook.com -all');
  assert.equal(txt[0].ttl, 300);
});

test('A, AAAA, MX, NS, SOA, SRV, PTR and a followed CNAME', async () => {
  const c = client();
  assert.deepEqual(recordsOf(await c.query('contoso.test', 'A'), 'A').map((r) => r.data), ['192.0.2.10']);
  assert.deepEqual(recordsOf(await c.query('contoso.test', 'AAAA'), 'AAAA').map((r) => r.data), ['2001:db8::10']);
  assert.deepEqual(recordsOf(await c.query('contoso.test', 'MX'), 'MX').map((r) => r.data), [{ preference: 0, exchange: 'contoso-test.mail.protection.outlook.com' }]);
  assert.deepEqual(recordsOf(await c.query('contoso.test', 'NS'), 'NS').map((r) => r.data), ['ns1.contoso.test']);
  assert.equal(recordsOf(await c.query('contoso.test', 'SOA'), 'SOA')[0].data.serial, 2026112501);
  assert.deepEqual(recordsOf(await c.query('_sip._tls.contoso.test', 'SRV'), 'SRV')[0].data, { priority: 100, weight: 1, port: 443, target: 'sipdir.online.lync.com' });
  assert.deepEqual(recordsOf(await c.query('10.2.0.192.in-addr.arpa', 'PTR'), 'PTR').map((r) => r.data), ['mail.contoso.test']);
  const cname = await c.query('autodiscover.contoso.test', 'A');
  assert.deepEqual(cname.answers.map((r) => [r.type, r.data]), [['CNAME', 'autodiscover.outlook.com'], ['A', '192.0.2.99']]);
  const spf99 = await c.query('spf99.contoso.test', 'SPF');
  assert.deepEqual(recordsOf(spf99, 'SPF').map((r) => r.data), ['v=spf1 a -all']);
});

test('NXDOMAIN and NODATA are different answers; NODATA carries the SOA', async () => {
  const nx = await client().query('nothing.contoso.test', 'A');
  assert.equal(nx.rcode, 'NXDOMAIN');
  const nodata = await client().query('autodiscover.outlook.com', 'TXT');
  assert.equal(nodata.rcode, 'NOERROR');
  assert.equal(nodata.answers.length, 0);
  const soaOwned = await client().query('contoso.test', 'CAA');
  assert.equal(soaOwned.authority[0]?.type, 'SOA');
});

test('a silent server is a TIMEOUT, never an empty answer; partial TIMEOUT answers the type it has', async () => {
  const started = Date.now();
  const t = await client().query('slow.contoso.test', 'TXT');
  assert.equal(t.rcode, 'TIMEOUT');
  assert.match(t.error ?? '', /no reply/);
  assert.ok(Date.now() - started < 2000);
  assert.equal((await client().query('half.contoso.test', 'TXT')).rcode, 'NOERROR');
  assert.equal((await client().query('half.contoso.test', 'A')).rcode, 'TIMEOUT');
});

test('a truncated UDP reply is retried over TCP', async () => {
  const before = server.queries.length;
  const a = await client().query('big.contoso.test', 'TXT');
  assert.equal(a.rcode, 'NOERROR');
  assert.equal(a.viaTcp, true);
  assert.ok(a.size > 512);
  assert.equal(recordsOf(a, 'TXT')[0].data, `v=spf1 ${long} -all`);
  assert.ok(recordsOf(a, 'TXT')[0].strings.every((s) => Buffer.byteLength(s) <= 255));
  assert.deepEqual(server.queries.slice(before).map((q) => q.transport), ['udp', 'tcp']);
});

test('names node:dns refuses (colon, slash, spaces, %) are sent and answered', async () => {
  assert.deepEqual(recordsOf(await client().query('foo:bar/baz.contoso.test', 'A'), 'A').map((r) => r.data), ['192.0.2.11']);
  assert.deepEqual(recordsOf(await client().query('macro%percent  space%20url-space.contoso.test', 'TXT'), 'TXT').map((r) => r.data), ['odd']);
});

test('names that cannot go on the wire are BADNAME without a query', async () => {
  const before = server.queries.length;
  assert.equal((await client().query('a..contoso.test', 'A')).rcode, 'BADNAME');
  assert.equal((await client().query(`${'x'.repeat(64)}.contoso.test`, 'A')).rcode, 'BADNAME');
  assert.equal(server.queries.length, before);
  assert.equal(badNameReason('ok.example.com.'), undefined);
});

test('an unanswering first server falls through to the next; retries are counted', async () => {
  const silent = await startDnsServer({ 'contoso.test': ['TIMEOUT'] });
  try {
    const c = createDnsClient({ servers: [{ host: silent.host, port: silent.port }, { host: server.host, port: server.port }], timeoutMs: 200, retries: 1 });
    const a = await c.query('contoso.test', 'A');
    assert.equal(a.rcode, 'NOERROR');
    assert.equal(a.server, `127.0.0.1:${server.port}`);
    assert.equal(silent.queries.length, 2);
  } finally {
    await silent.stop();
  }
});

test('--resolver parsing', () => {
  assert.deepEqual(parseServer('127.0.0.1:5353'), { host: '127.0.0.1', port: 5353 });
  assert.deepEqual(parseServer('9.9.9.9'), { host: '9.9.9.9', port: 53 });
  assert.deepEqual(parseServer('[::1]:53'), { host: '::1', port: 53 });
  assert.deepEqual(parseServer('2001:db8::1'), { host: '2001:db8::1', port: 53 });
  assert.throws(() => parseServer('1.2.3.4:99999'), /port/);
  assert.deepEqual(collectResolver('1.1.1.1', collectResolver('8.8.8.8:53')), [{ host: '8.8.8.8', port: 53 }, { host: '1.1.1.1', port: 53 }]);
  assert.ok(createDnsClient().servers.length >= 1);
});

test('NSD, a real authoritative server, serving a zone file', async () => {
  let nsd: NsdServer | undefined;
  try {
    nsd = await startNsd({
      'fabrikam.test': [
        '$ORIGIN fabrikam.test.', '$TTL 600',
        '@ IN SOA ns1.fabrikam.test. hostmaster.fabrikam.test. 7 3600 600 86400 60',
        '@ IN NS ns1.fabrikam.test.', 'ns1 IN A 127.0.0.1',
        '@ IN TXT "v=spf1 ip4:192.0.2.0/24 " "include:spf.protection.outlook.com -all"',
        '@ IN MX 10 fabrikam-test.mail.protection.outlook.com.',
        'autodiscover IN CNAME autodiscover.outlook.com.', '',
      ].join('\n'),
    });
    const c = createDnsClient({ servers: [{ host: nsd.host, port: nsd.port }], timeoutMs: 1000 });
    const txt = await c.query('fabrikam.test', 'TXT');
    assert.equal(txt.rcode, 'NOERROR');
    assert.equal(txt.authoritative, true);
    assert.deepEqual(recordsOf(txt, 'TXT')[0].strings, ['v=spf1 ip4:192.0.2.0/24 ', 'include:spf.protection.outlook.com -all']);
    assert.equal(recordsOf(txt, 'TXT')[0].ttl, 600);
    assert.equal(recordsOf(await c.query('fabrikam.test', 'MX'), 'MX')[0].data.exchange, 'fabrikam-test.mail.protection.outlook.com');
    assert.equal(recordsOf(await c.query('autodiscover.fabrikam.test', 'CNAME'), 'CNAME')[0].data, 'autodiscover.outlook.com');
    const nx = await c.query('nope.fabrikam.test', 'A');
    assert.equal(nx.rcode, 'NXDOMAIN');
    assert.equal(nx.authority[0]?.type, 'SOA');
  } finally {
    await nsd?.stop();
  }
});

test('a zone value the wire cannot carry is SERVFAIL (a distinct failure), and the server keeps serving', async () => {
  const s = await startDnsServer({ 'bad.test': [{ A: 'not-an-address' }], 'good.test': [{ A: '192.0.2.1' }] });
  try {
    const c = createDnsClient({ servers: [{ host: s.host, port: s.port }], timeoutMs: 300, retries: 0 });
    assert.equal((await c.query('bad.test', 'A')).rcode, 'SERVFAIL');
    assert.equal((await c.query('good.test', 'A')).rcode, 'NOERROR');
  } finally {
    await s.stop();
  }
});
