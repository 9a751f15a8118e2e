// The RFC 7208 (203 tests) and RFC 4408 (191 tests) SPF conformance suites, results and
// explanations, each scenario's zone served by a real DNS server on loopback and queried through
// the dns-packet client: RFC 7208 over UDP (TCP only for the few answers over 512 octets); RFC 4408 with the server's UDP limit lowered so that
// every answer with data comes back truncated and is fetched again over TCP. Ignore list: empty.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { checkHost } from '../../../src/diagnostics/spf/evaluate.ts';
import { createDnsClient } from '../../../src/diagnostics/dns/client.ts';
import { startDnsServer, type TestDnsServer } from '../../helpers/dns-server.ts';
import { loadSuite } from '../../helpers/spf-suite.ts';

const IGNORED: Record<string, string> = {}; // test id → reason; deliberately empty

let udpServer: TestDnsServer;
let tcpServer: TestDnsServer;
before(async () => {
  udpServer = await startDnsServer({});
  tcpServer = await startDnsServer({}, { udpLimit: 60 });
});
after(async () => {
  await udpServer.stop();
  await tcpServer.stop();
});

for (const [suite, expected, transport] of [['rfc7208', 203, 'udp'], ['rfc4408', 191, 'tcp']] as const) {
  test(`${suite} conformance suite: ${expected}/${expected} (${transport === 'tcp' ? 'UDP truncated, then TCP' : 'UDP'})`, async (t) => {
    const server = transport === 'tcp' ? tcpServer : udpServer;
    const { source, scenarios } = loadSuite(suite);
    const client = createDnsClient({ servers: [{ host: server.host, port: server.port }], timeoutMs: 150, retries: 0 });
    const failures: string[] = [];
    let passed = 0;
    let total = 0;
    for (const scenario of scenarios) {
      server.setZone(scenario.zone);
      for (const c of scenario.tests) {
        total++;
        if (IGNORED[c.id]) continue;
        const out = await checkHost({ ip: c.host, sender: c.mailfrom, helo: c.helo, defaultExplanation: 'DEFAULT', receiver: 'receiver.test' }, client);
        const resultOk = c.results.includes(out.result);
        const expOk = c.explanation === undefined || out.explanation === c.explanation;
        if (resultOk && expOk) {
          passed++;
          await t.test(`${c.id}: ${out.result}`, () => {});
        } else {
          const why = `${c.scenario} / ${c.id}: got ${out.result}${out.explanation !== undefined ? ` "${out.explanation}"` : ''}${out.problem ? ` (${out.problem})` : ''}, want ${c.results.join('|')}${c.explanation !== undefined ? ` "${c.explanation}"` : ''}`;
          failures.push(why);
          await t.test(`${c.id}`, () => assert.fail(why));
        }
      }
    }
    assert.equal(total, expected, `${source} should hold ${expected} tests`);
    const viaTcp = server.queries.filter((q) => q.transport === 'tcp').length;
    if (transport === 'tcp') assert.ok(viaTcp > 100, `only ${viaTcp} queries went over TCP`);
    else assert.ok(server.queries.filter((q) => q.transport === 'udp').length > 300);
    assert.deepEqual(failures, [], `${passed}/${total} passed`);
    assert.equal(passed, expected);
  });
}
