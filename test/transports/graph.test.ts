import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import { parseConfigText } from '../../src/config/load.ts';
import { silentLogger } from '../../src/core/logger.ts';
import { ManualClock } from '../../src/core/clock.ts';
import { createTokenProvider, loginWithDeviceCode } from '../../src/m365/tokens.ts';
import { createGraphTransport } from '../../src/transports/graph.ts';
import { startIdentity, type IdentityStandIn } from '../helpers/m365/identity.ts';
import { startGraph, type GraphStandIn } from '../helpers/m365/graph.ts';
import { loopbackCert, tempDir } from '../helpers/m365/pki.ts';
import { outbound, withAttachment } from '../helpers/m365/message.ts';

let idp: IdentityStandIn;
let graph: GraphStandIn;
let tmp: ReturnType<typeof tempDir>;
let caFile: string;
const MAILBOX = 'scanner@contoso.com';

before(async () => {
  tmp = tempDir();
  const tls = await loopbackCert();
  caFile = tmp.write('ca.pem', tls.cert);
  idp = await startIdentity(tls);
  graph = await startGraph(idp);
  graph.mailboxes.set(MAILBOX, ['invoicing@contoso.com']);
  idp.register({ clientId: 'send-only', secret: 'x', roles: { 'https://graph.microsoft.com': ['Mail.Send'] } });
  idp.register({ clientId: 'send-rw', secret: 'x', roles: { 'https://graph.microsoft.com': ['Mail.Send', 'Mail.ReadWrite'] } });
  idp.register({ clientId: 'nothing', secret: 'x', roles: {} });
  idp.register({ clientId: 'public', publicClient: true });
});
after(async () => { await graph.close(); await idp.close(); tmp.cleanup(); });

function setup(clientId: string, extra = '', clock?: ManualClock) {
  const u = parseConfigText(`upstreams:
  - name: graph
    url: graph://${idp.tenantDomain}/${MAILBOX}
    ca: ${caFile}
    oauth: { clientId: ${clientId}, ${clientId === 'public' ? 'mode: delegated' : 'clientSecret: x'}, authority: ${idp.base} }
    graph: { base: ${graph.base}${extra} }
`, path.join(tmp.dir, 'c.yaml')).upstreams[0];
  const tokenProvider = createTokenProvider(u, { logger: silentLogger(), mailroot: tmp.dir, clock });
  return { u, tokenProvider, transport: createGraphTransport(u, { logger: silentLogger(), tokenProvider }) };
}

const simple = (to = 'alice@contoso.com', extraHeaders = '') => `From: Scanner <${MAILBOX}>\nTo: ${to}\n${extraHeaders}Subject: scan\nMessage-ID: <1@x>\n\nhello\n`;

test('202 is recorded as relayed, queued at Microsoft, not delivered', async () => {
  const { transport } = setup('send-only');
  const out = await transport.send(outbound(simple(), MAILBOX, ['alice@contoso.com']));
  assert.equal(out.length, 1);
  assert.equal(out[0].action, 'relayed');
  assert.equal(out[0].status, '2.0.0');
  assert.equal(out[0].transport, 'graph');
  assert.match(out[0].diagnostic!, /queued at Microsoft, not proof of delivery/);
  assert.deepEqual(graph.sent.at(-1)!.to, ['alice@contoso.com']);
});

test('envelope wins: a Bcc-only recipient reaches Graph as Bcc; a header recipient not in the envelope is not mailed', async () => {
  const { transport } = setup('send-only');
  const raw = simple('Alice <alice@contoso.com>, "Smith, Bob" <bob@contoso.com>', 'Cc: carol@contoso.com\nBcc: old@contoso.com\n');
  const out = await transport.send(outbound(raw, MAILBOX, ['alice@contoso.com', 'carol@contoso.com', 'hidden@fabrikam.com']));
  assert.deepEqual(out.map((o) => o.action), ['relayed', 'relayed', 'relayed']);
  const sent = graph.sent.at(-1)!;
  assert.deepEqual(sent.to, ['alice@contoso.com']);
  assert.deepEqual(sent.cc, ['carol@contoso.com']);
  assert.deepEqual(sent.bcc, ['hidden@fabrikam.com']);
});

test('429 with Retry-After: delayed with retryAfterMs, then delivered', async () => {
  const { transport } = setup('send-only');
  graph.throttle(1, 7);
  const out = await transport.send(outbound(simple(), MAILBOX, ['alice@contoso.com']));
  assert.equal(out[0].action, 'delayed');
  assert.equal(out[0].retryAfterMs, 7000);
  assert.equal(out[0].routeBroken, undefined);
  assert.equal(out[0].replyCode, 429);
  const again = await transport.send(outbound(simple(), MAILBOX, ['alice@contoso.com']));
  assert.equal(again[0].action, 'relayed');
});

test('a 10 MB message goes draft + upload session + send, every request under 4 MB', async () => {
  const { transport } = setup('send-rw');
  const { raw, attachment } = withAttachment(MAILBOX, 'alice@contoso.com', 7_700_000);
  assert.ok(raw.length > 10_000_000);
  const mark = graph.requests.length;
  const out = await transport.send(outbound(raw, MAILBOX, ['alice@contoso.com', 'bcc@fabrikam.com']));
  assert.equal(out[0].action, 'relayed', out[0].reason);
  assert.match(out[0].diagnostic!, /upload session/);
  const sent = graph.sent.at(-1)!;
  assert.equal(sent.via, 'draft');
  assert.deepEqual(sent.bcc, ['bcc@fabrikam.com']);
  assert.equal(sent.attachments.length, 1);
  assert.equal(sent.attachments[0].sha256, createHash('sha256').update(attachment).digest('hex'));
  const reqs = graph.requests.slice(mark);
  assert.ok(reqs.some((r) => r.path.endsWith('/createUploadSession')));
  assert.ok(reqs.filter((r) => r.method === 'PUT').length >= 3);
  assert.ok(reqs.every((r) => r.bytes <= 4 * 1024 * 1024 && r.status < 300), JSON.stringify(reqs.filter((r) => r.status >= 300)));
});

test('a large message without Mail.ReadWrite waits and says so; with largeMessages refuse it fails with that reason', async () => {
  const { raw } = withAttachment(MAILBOX, 'alice@contoso.com', 4_000_000);
  const out = await setup('send-only').transport.send(outbound(raw, MAILBOX, ['alice@contoso.com']));
  assert.equal(out[0].action, 'delayed');
  assert.equal(out[0].routeBroken, true);
  assert.match(out[0].reason!, /needs the application permission Mail\.ReadWrite/);
  const refused = await setup('send-rw', ', largeMessages: refuse').transport.send(outbound(raw, MAILBOX, ['alice@contoso.com']));
  assert.equal(refused[0].action, 'failed');
  assert.equal(refused[0].status, '5.3.4');
  assert.match(refused[0].reason!, /4 MB request limit/);
});

test('send-as refused for one From is a message failure (5.7.60); an app without permission breaks the route', async () => {
  const denied = await setup('send-only').transport.send(outbound(simple().replace(`<${MAILBOX}>`, '<ceo@contoso.com>'), 'ceo@contoso.com', ['alice@contoso.com']));
  assert.equal(denied[0].action, 'failed');
  assert.equal(denied[0].status, '5.7.60');
  assert.ok(!denied[0].routeBroken);
  assert.match(denied[0].reason!, /Send As/);
  assert.equal((await setup('send-only').transport.send(outbound(simple().replace(`<${MAILBOX}>`, '<invoicing@contoso.com>'), 'invoicing@contoso.com', ['alice@contoso.com'])))[0].action, 'relayed');
  const none = await setup('nothing').transport.send(outbound(simple(), MAILBOX, ['alice@contoso.com']));
  assert.equal(none[0].action, 'delayed');
  assert.equal(none[0].routeBroken, true);
  assert.match(none[0].reason!, /Mail\.Send/);
});

test('token expiry while messages wait: renewed before use, and an expired token refused by Graph is replaced once', async () => {
  idp.tokenLifetime = 2;
  try {
    const { transport, tokenProvider } = setup('send-only');
    assert.equal((await transport.send(outbound(simple(), MAILBOX, ['alice@contoso.com'])))[0].action, 'relayed');
    const first = await tokenProvider.getToken();
    await new Promise((r) => setTimeout(r, 2200));
    assert.equal((await transport.send(outbound(simple(), MAILBOX, ['alice@contoso.com'])))[0].action, 'relayed');
    assert.notEqual(await tokenProvider.getToken(), first, 'renewed');

    // A provider whose clock stands still keeps offering the expired token: Graph says 401, the transport renews once.
    const frozen = new ManualClock(Date.now());
    const stale = setup('send-only', '', frozen);
    await stale.tokenProvider.getToken();
    await new Promise((r) => setTimeout(r, 2200));
    const mark = graph.requests.length;
    const out = await stale.transport.send(outbound(simple(), MAILBOX, ['alice@contoso.com']));
    assert.equal(out[0].action, 'relayed');
    assert.deepEqual(graph.requests.slice(mark).map((r) => r.status), [401, 202]);
  } finally {
    idp.tokenLifetime = 3600;
  }
});

test('delegated: a revoked refresh token leaves the message waiting (route broken) with a clear reason, never a bounce', async () => {
  const { u, transport } = setup('public');
  await loginWithDeviceCode(u, { mailroot: tmp.dir }, () => setTimeout(() => idp.approveDevice(idp.lastDeviceCode!.user_code, MAILBOX), 200));
  // delegated Graph tokens carry scp Mail.Send
  assert.equal((await transport.send(outbound(simple(), MAILBOX, ['alice@contoso.com'])))[0].action, 'relayed');
  idp.revokeUser(MAILBOX);
  const { transport: later } = setup('public');
  const out = await later.send(outbound(simple(), MAILBOX, ['alice@contoso.com']));
  assert.equal(out[0].action, 'delayed');
  assert.equal(out[0].routeBroken, true);
  assert.match(out[0].reason!, /revoked.*m365 login/s);
});

test('the answer to sendMail lost after Microsoft took it: delayed as a possible duplicate, saying so', async () => {
  const { transport } = setup('send-only');
  const before = graph.sent.length;
  graph.dropAnswers = 1;
  const out = await transport.send(outbound(simple(), MAILBOX, ['alice@contoso.com']));
  assert.equal(graph.sent.length, before + 1, 'the stand-in sent it');
  assert.deepEqual([out[0].action, out[0].possibleDuplicate], ['delayed', true], JSON.stringify(out));
  assert.match(out[0].reason!, /may have sent the message already/);
  assert.doesNotMatch(out[0].reason!, /could not be reached/);
});

test('the answer to a large message\'s send lost: a possible duplicate, and the draft (now the sent message) is not deleted', async () => {
  const { transport } = setup('send-rw');
  const { raw } = withAttachment(MAILBOX, 'alice@contoso.com', 5_000_000);
  const mark = graph.requests.length;
  graph.dropAnswers = 1;
  const out = await transport.send(outbound(raw, MAILBOX, ['alice@contoso.com']));
  assert.deepEqual([out[0].action, out[0].possibleDuplicate], ['delayed', true], JSON.stringify(out));
  assert.equal(graph.sent.at(-1)!.via, 'draft');
  assert.ok(!graph.requests.slice(mark).some((r) => r.method === 'DELETE'), 'no DELETE of the sent draft');
});

test('Microsoft Graph unreachable: delayed, not a possible duplicate ("could not be reached")', async () => {
  const { u, tokenProvider } = setup('send-only');
  // the same upstream pointed at a port nothing listens on
  const closed = await new Promise<number>((resolve) => { const s = net.createServer().listen(0, '127.0.0.1', () => { const p = (s.address() as net.AddressInfo).port; s.close(() => resolve(p)); }); });
  const down = createGraphTransport({ ...u, graph: { ...u.graph!, base: `https://127.0.0.1:${closed}` } }, { logger: silentLogger(), tokenProvider });
  const out = await down.send(outbound(simple(), MAILBOX, ['alice@contoso.com']));
  assert.equal(out[0].action, 'delayed');
  assert.notEqual(out[0].possibleDuplicate, true);
  assert.match(out[0].reason!, /could not be reached/);
});
