// Graph's 4 concurrent requests per app per mailbox (issue 15): two graph:// upstreams on two routes
// use the same app and the same mailbox. A strict Graph stand-in counts the requests in progress per
// app + mailbox and answers 429 MailboxConcurrency to any over 4; it also holds requests open until
// 4 are in progress (or every message left is), so a relay that allowed more would be caught.
// The relay must never have more than 4 in progress, together, and deliver every message.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { startRelay, type RelayProcess } from '../helpers/relay.ts';
import { startIdentity, type IdentityStandIn } from '../helpers/m365/identity.ts';
import { startGraph, type GraphStandIn } from '../helpers/m365/graph.ts';
import { runCommand, waitUntil as waitFor } from '../helpers/wait.ts';
import { loopbackCert, tempDir } from '../helpers/m365/pki.ts';

const MAILBOX = 'scanner@contoso.com';
let tmp: ReturnType<typeof tempDir>;
let relay: RelayProcess;
let idp: IdentityStandIn;
let graph: GraphStandIn;

const run = (cmd: string, args: string[]) => runCommand(cmd, args, 120_000);
const waitUntil = (what: string, check: () => boolean, ms = 60_000) => waitFor(what, check, ms, () => `peak ${JSON.stringify([...graph.peakConcurrency])}, refused ${graph.concurrencyRefused}; relay log tail:\n${relay.output().split('\n').slice(-10).join('\n')}`);

/** One smtplib session sending each message (each gets its own 250). */
function send(messages: Array<{ to: string; subject: string }>): Promise<{ code: number; out: string }> {
  return run('/usr/bin/python3', ['-c', [
    'import smtplib',
    `s = smtplib.SMTP("127.0.0.1", ${relay.port}, timeout=60)`,
    ...messages.map((m) => `s.sendmail(${JSON.stringify(MAILBOX)}, [${JSON.stringify(m.to)}], ${JSON.stringify(`From: ${MAILBOX}\r\nTo: ${m.to}\r\nSubject: ${m.subject}\r\n\r\nscan\r\n`)})`),
    's.quit()',
  ].join('\n')]);
}

before(async () => {
  tmp = tempDir('sh-e2e-graph-conc-');
  const tls = await loopbackCert();
  const caFile = tmp.write('ca.pem', tls.cert);
  idp = await startIdentity(tls, { tenantDomain: 'contoso.onmicrosoft.com' });
  graph = await startGraph(idp);
  idp.register({ clientId: 'relay-app', secret: 'app-secret', roles: { 'https://graph.microsoft.com': ['Mail.Send'] } });
  graph.mailboxes.set(MAILBOX, []);
  graph.concurrencyLimit = 4;
  // the same app and mailbox; the tenant spelled two ways (domain, ID): still one budget
  const upstream = (name: string, tenant: string) => [
    `  - name: ${name}`,
    `    url: graph://${tenant}/${MAILBOX}`,
    `    ca: ${caFile}`,
    `    oauth: { clientId: relay-app, clientSecret: app-secret, authority: ${idp.base} }`,
    `    graph: { base: ${graph.base} }`,
  ];
  relay = await startRelay([
    'upstreams:', ...upstream('graph-a', idp.tenantDomain), ...upstream('graph-b', idp.tenantId),
    'routes:',
    '  - { name: a, upstreams: [graph-a] }',
    '  - { name: b, upstreams: [graph-b] }',
    'routing:',
    '  rules:',
    '    - { recipientDomains: [two.example], route: b }',
    '  default: a',
    'delivery: { concurrency: 16, retry: [1s], scanInterval: 200ms }',
  ].join('\n'));
});

after(async () => {
  await relay?.stop();
  if (relay) rmSync(relay.dir, { recursive: true, force: true });
  await Promise.all([graph?.close(), idp?.close()]);
  tmp?.cleanup();
});

test('two graph upstreams of the same app and mailbox never have more than 4 requests in progress together; every message is delivered', async () => {
  // warm-up: one message per route, so both upstreams are past their first (one-at-a-time) delivery
  const warm = await send([{ to: 'x@one.example', subject: 'warm a' }, { to: 'x@two.example', subject: 'warm b' }]);
  assert.equal(warm.code, 0, warm.out);
  await waitUntil('the warm-up messages', () => graph.sent.length === 2);
  graph.peakConcurrency.clear();

  const total = 16;
  const messages = Array.from({ length: total }, (_, i) => ({ to: `r${i}@${i % 2 ? 'two' : 'one'}.example`, subject: `burst ${i}` }));
  const burst = (s?: string) => Boolean(s?.startsWith('burst '));
  // hold requests until 4 are in progress (or all the messages left are): a relay allowing a 5th is answered 429
  let held: Array<() => void> = [];
  graph.gate = () => new Promise<void>((resolve) => {
    held.push(resolve);
    const left = total - graph.sent.filter((m) => burst(m.subject)).length;
    if (held.length >= Math.min(4, left)) {
      const go = held;
      held = [];
      for (const r of go) r();
    }
  });
  const sent = await send(messages);
  assert.equal(sent.code, 0, sent.out);
  await waitUntil(`all ${total} messages at Graph`, () => graph.sent.filter((m) => burst(m.subject)).length === total || graph.concurrencyRefused > 0);
  graph.gate = undefined;
  assert.equal(graph.concurrencyRefused, 0, 'no request went over the 4 the app may have in progress on the mailbox');
  assert.deepEqual([...graph.peakConcurrency.values()], [4], 'one app + mailbox budget, used to its 4');
  assert.equal(new Set(graph.sent.filter((m) => burst(m.subject)).map((m) => m.subject)).size, total, 'each message once');
  const attempts = relay.output().split('\n').filter((l) => l.includes('"delivery attempt"')).map((l) => JSON.parse(l) as { upstream: string; route?: string });
  assert.deepEqual([...new Set(attempts.map((a) => `${a.route}/${a.upstream}`))].sort(), ['a/graph-a', 'b/graph-b'], 'both routes sent');
});
