// Our check_host() against pyspf (Debian's python3-spf, the reference implementation) on 300
// generated records and zones (seeded, so a failure reproduces), both asking the same DNS server on
// loopback. Every disagreement in result, or in explanation on fail, is a failure with the case.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { checkHost } from '../../../src/diagnostics/spf/evaluate.ts';
import { createDnsClient } from '../../../src/diagnostics/dns/client.ts';
import { startDnsServer, type TestDnsServer } from '../../helpers/dns-server.ts';
import { generateCases } from '../../helpers/spf-generator.ts';
import { receivedSpfValue } from '../../../src/diagnostics/spf/received.ts';

const SEED = Number(process.env.SPF_DIFF_SEED ?? 20261125);
const COUNT = 300;
const { zone, cases } = generateCases(SEED, COUNT);
let server: TestDnsServer;
before(async () => { server = await startDnsServer(zone); });
after(async () => server.stop());

test(`differential vs pyspf: ${COUNT} generated cases (seed ${SEED})`, async () => {
  const driver = path.join(import.meta.dirname, '../../fixtures/spf/pyspf-driver.py');
  // asynchronous: the DNS server pyspf asks lives in this process's event loop
  const run = await runPython(driver, JSON.stringify({ port: server.port, cases: cases.map((c) => ({ id: c.id, ip: c.ip, sender: c.sender, helo: c.helo })) }));
  assert.equal(run.status, 0, `pyspf driver failed: ${run.stderr}`);
  const reference = new Map((JSON.parse(run.stdout) as Reference[]).map((r) => [r.id, r]));
  const client = createDnsClient({ servers: [{ host: server.host, port: server.port }], timeoutMs: 300, retries: 0 });
  const tally: Record<string, number> = {};
  const ourResults = new Map<string, Awaited<ReturnType<typeof checkHost>>>();
  for (const c of cases) {
    const ours = await checkHost({ ip: c.ip, sender: c.sender, helo: c.helo, receiver: 'receiver.test', defaultExplanation: 'DEFAULT' }, client);
    ourResults.set(c.id, ours);
    tally[ours.result] = (tally[ours.result] ?? 0) + 1;
  }
  let disagreeing = cases.filter((c) => differs(c, ourResults.get(c.id)!, reference.get(c.id)) !== undefined);
  // The zone's TIMEOUT names never answer, so both sides wait 300 ms for them; on a machine busy
  // enough that an answered query takes longer, either side can say temperror where the other does
  // not. Such cases are asked again, both sides, with 3 s: a real disagreement stays one.
  const slow = disagreeing.filter((c) => ourResults.get(c.id)!.result === 'temperror' || reference.get(c.id)?.result === 'temperror');
  if (slow.length) {
    const again = await runPython(driver, JSON.stringify({ port: server.port, timeout: 3, cases: slow.map((c) => ({ id: c.id, ip: c.ip, sender: c.sender, helo: c.helo })) }));
    assert.equal(again.status, 0, `pyspf driver failed: ${again.stderr}`);
    for (const r of JSON.parse(again.stdout) as Array<{ id: string; result: string; explanation: string | null; header: string | null }>) reference.set(r.id, r);
    const patient = createDnsClient({ servers: [{ host: server.host, port: server.port }], timeoutMs: 3000, retries: 0 });
    for (const c of slow) ourResults.set(c.id, await checkHost({ ip: c.ip, sender: c.sender, helo: c.helo, receiver: 'receiver.test', defaultExplanation: 'DEFAULT' }, patient));
    disagreeing = cases.filter((c) => differs(c, ourResults.get(c.id)!, reference.get(c.id)) !== undefined);
  }
  const disagreements = disagreeing.map((c) => differs(c, ourResults.get(c.id)!, reference.get(c.id))!);
  // the generator must actually exercise every result, or the comparison proves little
  for (const r of ['pass', 'fail', 'softfail', 'neutral', 'none', 'permerror', 'temperror']) assert.ok((tally[r] ?? 0) > 0, `no case produced ${r}: ${JSON.stringify(tally)}`);
  assert.deepEqual(disagreements, [], `${disagreements.length} of ${COUNT} disagree; results: ${JSON.stringify(tally)}`);
});

type Reference = { id: string; result: string; explanation: string | null; header: string | null };

/** How ours and pyspf's answer on a case differ, in words; undefined when they agree. */
function differs(c: (typeof cases)[number], ours: Awaited<ReturnType<typeof checkHost>>, theirs: Reference | undefined): string | undefined {
  // Received-SPF too: exactly, except that for permerror the reason in words (ours are our own)
  // and the problem= term are left out of the comparison
  const withoutReason = (h: string | null | undefined): string | null | undefined => (h && ours.result === 'permerror' ? `${h.split(' (')[0]} ${h.slice(h.indexOf(' client-ip=') + 1).replace(/ problem=[^;]*;/, '')}` : h);
  const comparable = withoutReason(receivedSpfValue(ours));
  const theirHeader = withoutReason(theirs?.header);
  const same = theirs && theirs.result === ours.result && (ours.result !== 'fail' || theirs.explanation === ours.explanation) && comparable === theirHeader;
  if (same) return undefined;
  const records = Object.entries(zone).filter(([name]) => name.endsWith(`.${c.domain.replace(/^mail\./, '')}`) || name === c.domain || name === c.domain.replace(/^mail\./, '')).map(([name, rr]) => `    ${name}: ${JSON.stringify(rr)}`);
  return `${c.id} ip=${c.ip} sender=${c.sender || '<>'} helo=${c.helo}: ours ${ours.result}${ours.result === 'fail' ? ` "${ours.explanation}"` : ''}${ours.problem ? ` (${ours.problem})` : ''}, pyspf ${theirs?.result}${theirs?.explanation ? ` "${theirs.explanation}"` : ''}\n    ours:   ${comparable}\n    pyspf:  ${theirHeader}\n${records.join('\n')}`;
}

function runPython(script: string, input: string): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('/usr/bin/python3', [script], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('close', (status) => { clearTimeout(timer); resolve({ status, stdout, stderr }); });
    child.stdin.end(input);
  });
}
