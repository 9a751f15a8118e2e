import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { parseConfigText } from '../../src/config/load.ts';
import { silentLogger } from '../../src/core/logger.ts';
import { createConnectorTransport } from '../../src/transports/connector.ts';
import { startMxStandIn } from '../helpers/m365/smtp.ts';
import { loopbackCert, namedCert, tempDir } from '../helpers/m365/pki.ts';
import { outbound } from '../helpers/m365/message.ts';

let tmp: ReturnType<typeof tempDir>;
let tls: { cert: string; key: string };
let caFile: string;
let relayCert: { cert: string; key: string };
let relayCertFile: string;

before(async () => {
  tmp = tempDir();
  tls = await loopbackCert();
  caFile = tmp.write('ca.pem', tls.cert);
  relayCert = await namedCert('relay.contoso.com');
  relayCertFile = tmp.write('relay.pem', relayCert.cert + relayCert.key);
});
after(() => tmp.cleanup());

function upstream(port: number, extra = '', timeoutSeconds = 120) {
  return parseConfigText(`upstreams:
  - name: tenant
    url: connector://contoso.com
    ca: ${caFile}
    timeout: ${timeoutSeconds}
    connector: { port: ${port}${extra} }
`, path.join(tmp.dir, 'c.yaml')).upstreams[0];
}

const msg = () => outbound('From: scanner@contoso.com\nTo: alice@contoso.com, bob@fabrikam.com\nSubject: scan\n\nhi\n', 'scanner@contoso.com', ['alice@contoso.com', 'bob@fabrikam.com']);

test('connector mode presents the client certificate; the MX endpoint (requestCert) sees its CN; MX looked up in DNS', async () => {
  const mx = await startMxStandIn(tls, { requestCert: true, trust: [relayCert.cert] });
  try {
    const lookups: string[] = [];
    const t = createConnectorTransport(upstream(mx.port, `, clientCertificate: ${relayCertFile}`), {
      logger: silentLogger(), hostname: 'relay.contoso.com',
      resolveMx: async (d) => { lookups.push(d); return [{ exchange: '127.0.0.1', priority: 0 }]; },
    });
    const out = await t.send(msg());
    assert.deepEqual(out.map((o) => o.action), ['relayed', 'relayed'], JSON.stringify(out));
    assert.deepEqual(lookups, ['contoso.com']);
    assert.equal(mx.received.length, 1);
    assert.equal(mx.received[0].tls, true);
    assert.equal(mx.received[0].clientCertCN, 'relay.contoso.com');
    assert.deepEqual(mx.received[0].rcptTo, ['alice@contoso.com', 'bob@fabrikam.com']);
    // without the certificate the upstream sees none
    const plain = createConnectorTransport(upstream(mx.port, ', host: 127.0.0.1'), { logger: silentLogger(), hostname: 'relay' });
    await plain.send(msg());
    assert.equal(mx.received[1].clientCertCN, undefined);
  } finally {
    await mx.close();
  }
});

test('STARTTLS is required: an MX endpoint without it gets nothing, the message waits with the reason', async () => {
  const mx = await startMxStandIn(tls, { noStartTls: true });
  try {
    const out = await createConnectorTransport(upstream(mx.port, ', host: 127.0.0.1'), { logger: silentLogger(), hostname: 'relay' }).send(msg());
    assert.equal(out[0].action, 'delayed');
    assert.match(out[0].reason!, /STARTTLS/);
    assert.equal(mx.received.length, 0);
  } finally {
    await mx.close();
  }
});

test('550 5.7.64 (connector no longer matches) parks the route; 5.7.68 explains direct send', async () => {
  const mx = await startMxStandIn(tls, { rejectData: '550 5.7.64 TenantAttribution; Relay Access Denied [SN1NAM02FT0000.eop-nam02.prod.protection.outlook.com]' });
  try {
    const t = createConnectorTransport(upstream(mx.port, ', host: 127.0.0.1'), { logger: silentLogger(), hostname: 'relay' });
    const out = await t.send(msg());
    assert.equal(out[0].action, 'delayed');
    assert.equal(out[0].routeBroken, true);
    assert.equal(out[0].status, '5.7.64');
    assert.match(out[0].reason!, /inbound connector/);
    mx.rejectData = '550 5.7.68 TenantInboundAttribution; Direct Send not allowed for this organization from unauthorized sources';
    const ds = await t.send(msg());
    assert.equal(ds[0].routeBroken, true);
    assert.match(ds[0].reason!, /RejectDirectSend/);
    mx.rejectData = '550 5.7.1 Unable to relay';
    const relay = await t.send(msg());
    assert.equal(relay[0].action, 'failed');
    assert.match(relay[0].reason!, /only recipients with mailboxes in the tenant/);
  } finally {
    await mx.close();
  }
});

test('bare LF from a device reaches the MX endpoint as CRLF (Exchange refuses bare LF with 5.6.11)', async () => {
  const mx = await startMxStandIn(tls);
  try {
    const raw = Buffer.from('From: scanner@contoso.com\nTo: alice@contoso.com\nSubject: lf\n\nline one\nline two\n');
    const out = await createConnectorTransport(upstream(mx.port, ', host: 127.0.0.1'), { logger: silentLogger(), hostname: 'relay' }).send(outbound(raw, 'scanner@contoso.com', ['alice@contoso.com']));
    assert.equal(out[0].action, 'relayed');
    const got = mx.received[0].raw.toString('latin1');
    assert.match(got, /line one\r\nline two\r\n/);
    assert.doesNotMatch(got, /[^\r]\n/);
  } finally {
    await mx.close();
  }
});

test('the connection lost after the final dot: delayed as a possible duplicate, and the next MX endpoint is not tried at once', async () => {
  const mx = await startMxStandIn(tls, { dropAfterDot: true });
  try {
    // Two MX endpoints (the same stand-in twice): hopping to the second would send the message again now.
    const t = createConnectorTransport(upstream(mx.port), { logger: silentLogger(), hostname: 'relay', resolveMx: async () => [{ exchange: '127.0.0.1', priority: 0 }, { exchange: '127.0.0.1', priority: 10 }] });
    const out = await t.send(msg());
    assert.deepEqual(out.map((o) => [o.action, o.possibleDuplicate]), [['delayed', true], ['delayed', true]], JSON.stringify(out));
    assert.match(out[0].reason!, /may have it already/);
    assert.equal(mx.received.length, 1, 'the stand-in got the message once');
  } finally {
    await mx.close();
  }
});

test('an MX endpoint that stalls in the middle of DATA: delayed after the timeout, not a possible duplicate (its final dot never left)', async () => {
  const mx = await startMxStandIn(tls, { stallData: true });
  try {
    // Larger than the loopback socket buffers hold, so the relay cannot finish writing it.
    const body = `${'x'.repeat(998)}\r\n`.repeat(24_000);
    const m = outbound(`From: scanner@contoso.com\r\nTo: alice@contoso.com\r\nSubject: big\r\n\r\n${body}`, 'scanner@contoso.com', ['alice@contoso.com']);
    const out = await createConnectorTransport(upstream(mx.port, ', host: 127.0.0.1', 2), { logger: silentLogger(), hostname: 'relay' }).send(m);
    assert.equal(out[0].action, 'delayed', JSON.stringify(out));
    assert.notEqual(out[0].possibleDuplicate, true, JSON.stringify(out));
    assert.doesNotMatch(out[0].reason ?? '', /may have it already/);
  } finally {
    await mx.close();
  }
});

test('a message over the SIZE the MX endpoint announces fails at once (5.3.4) with the reason, and nothing is sent', async () => {
  const mx = await startMxStandIn(tls, { size: 10_000 });
  try {
    const m = outbound(`From: scanner@contoso.com\r\nTo: alice@contoso.com\r\nSubject: big\r\n\r\n${'x'.repeat(76)}\r\n`.repeat(200), 'scanner@contoso.com', ['alice@contoso.com']);
    const out = await createConnectorTransport(upstream(mx.port, ', host: 127.0.0.1'), { logger: silentLogger(), hostname: 'relay' }).send(m);
    assert.deepEqual([out[0].action, out[0].status], ['failed', '5.3.4'], JSON.stringify(out));
    assert.match(out[0].reason!, /larger than 127\.0\.0\.1 accepts/);
    assert.equal(mx.received.length, 0);
  } finally {
    await mx.close();
  }
});
