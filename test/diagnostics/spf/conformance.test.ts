// The RFC 7208 (203 tests) and RFC 4408 (191 tests) SPF conformance suites, results and
// explanations, each scenario's zone served by a real DNS server on loopback and queried through
// the dns-packet client over UDP (and TCP when truncated). Ignore list: empty.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { checkHost } from '../../../src/diagnostics/spf/evaluate.ts';
import { createDnsClient } from '../../../src/diagnostics/dns/client.ts';
import { startDnsServer, type TestDnsServer } from '../../helpers/dns-server.ts';
import { loadSuite } from '../../helpers/spf-suite.ts';

const IGNORED: Record<string, string> = {}; // test id → reason; deliberately empty

let server: TestDnsServer;
before(async () => { server = await startDnsServer({}); });
after(async () => server.stop());

for (const [suite, expected] of [['rfc7208', 203], ['rfc4408', 191]] as const) {
  test(`${suite} conformance suite: ${expected}/${expected}`, async (t) => {
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
    assert.deepEqual(failures, [], `${passed}/${total} passed`);
    assert.equal(passed, expected);
  });
}
