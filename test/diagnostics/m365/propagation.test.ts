// `dns propagation` against several real DNS servers on loopback, each serving a different
// version of the zone (the record "changed" and not every resolver has the new value yet), one
// silent (timeout) and one answering SERVFAIL.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startDnsServer, type TestDnsServer, type Zone } from '../../helpers/dns-server.ts';
import { checkPropagation, formatPropagationReport } from '../../../src/diagnostics/m365/propagation.ts';
import { startServfailServer } from './servfail-server.ts';
import { runCli } from '../../helpers/cli.ts';

const soa = { SOA: ['ns1.shift.test', 'hostmaster.shift.test', 7, 3600, 600, 86400, 120] as [string, string, number, number, number, number, number] };
const NEW: Zone = { 'shift.test': [soa, { MX: [0, 'shift-test.mail.protection.outlook.com'] }, { TXT: 'MS=ms55555555' }], 'www.shift.test': [{ A: '192.0.2.20' }] };
const OLD: Zone = { 'shift.test': [soa, { MX: [10, 'mail.shift.test'] }], 'www.shift.test': [{ A: '192.0.2.10' }] };
const SLOW: Zone = { 'shift.test': ['TIMEOUT'], 'www.shift.test': ['TIMEOUT'] };

let servers: TestDnsServer[] = [];
let servfail: { host: string; port: number; stop(): Promise<void> };
before(async () => {
  servers = [
    await startDnsServer(NEW, { ttl: 300 }),
    await startDnsServer(NEW, { ttl: 280 }),
    await startDnsServer(OLD, { ttl: 3000 }),
    await startDnsServer(SLOW),
  ];
  servfail = await startServfailServer();
});
after(async () => {
  await Promise.all(servers.map((s) => s.stop()));
  await servfail.stop();
});

const resolvers = (...idx: number[]) => idx.map((i) => ({ server: { host: servers[i].host, port: servers[i].port }, label: `r${i}` }));

test('majority vs the resolver still on the old MX, with remaining TTLs; a silent resolver is could-not-check', async () => {
  const r = await checkPropagation('shift.test', 'MX', { resolvers: [...resolvers(0, 1, 2, 3), { server: servfail, label: 'broken' }], timeoutMs: 300 });
  assert.deepEqual(r.majority, ['0 shift-test.mail.protection.outlook.com']);
  assert.deepEqual(r.rows.map((x) => [x.label, x.state]), [['r0', 'majority'], ['r1', 'majority'], ['r2', 'differs'], ['r3', 'could-not-check'], ['broken', 'could-not-check']]);
  assert.deepEqual(r.rows.map((x) => x.ttl), [300, 280, 3000, undefined, undefined]);
  assert.deepEqual(r.rows[2].values, ['10 mail.shift.test']);
  assert.match(r.rows[3].error!, /no reply/);
  assert.match(r.rows[4].error!, /SERVFAIL/);
  assert.deepEqual(r.summary, { agreeing: 2, differing: 1, couldNotCheck: 2, total: 5, line: '1 of 5 resolvers answer differently from the majority; 2 could not be asked' });
  const text = formatPropagationReport(r);
  assert.match(text, /✗ 127\.0\.0\.1:\d+ r2\s+10 mail\.shift\.test  \(TTL 3000 s left\)  ← differs/);
});

test('--expect: a TXT added on some servers only; the old ones answer NODATA with the SOA negative TTL', async () => {
  const r = await checkPropagation('shift.test', 'TXT', { resolvers: resolvers(0, 2), expect: 'MS=ms55555555', timeoutMs: 300 });
  assert.deepEqual(r.rows.map((x) => [x.state, x.values]), [['expected', ['MS=ms55555555']], ['differs', ['(no record of this type)']]]);
  assert.equal(r.rows[1].ttl, 120);
  assert.match(r.summary.line, /^1 of 2 resolvers answer the expected value "MS=ms55555555"; 1 still answer something else$/);
});

test('a name that does not exist: NXDOMAIN is an answer ("no such name"), not an error', async () => {
  const r = await checkPropagation('new.shift.test', 'A', { resolvers: resolvers(0, 1), timeoutMs: 300 });
  assert.deepEqual(r.rows.map((x) => [x.rcode, x.state, x.values]), [['NXDOMAIN', 'majority', ['(no such name)']], ['NXDOMAIN', 'majority', ['(no such name)']]]);
  assert.equal(r.summary.differing, 0);
});

test('CLI: exit 1 when resolvers differ, 0 when all agree, 3 when none could be asked', async () => {
  const args = (idx: number[]) => idx.flatMap((i) => ['--resolver', `127.0.0.1:${servers[i].port}`]);
  const differ = await runCli(['dns', 'propagation', 'www.shift.test', 'A', ...args([0, 1, 2]), '--timeout', '300', '--json']);
  assert.equal(differ.code, 1, differ.stderr);
  const json = JSON.parse(differ.stdout);
  assert.deepEqual(json.rows.map((x: { values: string[] }) => x.values[0]), ['192.0.2.20', '192.0.2.20', '192.0.2.10']);
  const agree = await runCli(['dns', 'propagation', 'www.shift.test', 'a', ...args([0, 1]), '--timeout', '300']);
  assert.equal(agree.code, 0, agree.stderr);
  assert.match(agree.stdout, /all 2 resolvers that answered agree/);
  const expectOld = await runCli(['dns', 'propagation', 'www.shift.test', 'A', ...args([2]), '--expect', '192.0.2.10', '--timeout', '300']);
  assert.equal(expectOld.code, 0, expectOld.stderr);
  const none = await runCli(['dns', 'propagation', 'www.shift.test', 'A', ...args([3]), '--timeout', '300']);
  assert.equal(none.code, 3, none.stderr);
  const badType = await runCli(['dns', 'propagation', 'www.shift.test', 'BOGUS', ...args([0])]);
  assert.equal(badType.code, 2);
});

