// A message whose recipients need different routes: one queue file, each recipient with its route
// and state; each part goes out through its own route's upstream, with that route's sender policy.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { harness } from '../outbound/harness.ts';
import { startUpstream } from '../transports/upstream-server.ts';

const T = { timeout: 40_000 };

test('a split message: each route delivers its recipients, with its own sender mode; states kept per recipient in one file', T, async (t) => {
  let laterOk = false;
  const a = await startUpstream();
  const b = await startUpstream({ rcpt: (r) => (r.startsWith('later') && !laterOk ? [451, '4.3.0 try later'] : undefined) });
  t.after(() => Promise.all([a.close(), b.close()]));
  const h = await harness(`upstreams:
  - { name: up-a, url: "smtp://127.0.0.1:${a.port}" }
  - { name: up-b, url: "smtp://127.0.0.1:${b.port}" }
routes:
  - { name: tenant-a, upstreams: [up-a] }
  - { name: tenant-b, upstreams: [up-b], sender: { mode: rewrite, rewriteTo: relay@b.example } }
routing:
  rules:
    - { recipientDomains: [b.example], route: tenant-b }
  default: tenant-a
`);
  t.after(() => h.close());
  const id = await h.enqueue('scanner@a.example', ['x@a.example', 'y@b.example', 'later@b.example'], 'scan', {
    route: 'tenant-a,tenant-b', recipientRoutes: { 'x@a.example': 'tenant-a', 'y@b.example': 'tenant-b', 'later@b.example': 'tenant-b' },
  });
  await h.manager.runOnce();
  assert.deepEqual(a.received.map((r) => [r.from, r.to]), [['scanner@a.example', ['x@a.example']]]);
  assert.deepEqual(b.received.map((r) => [r.from, r.to]), [['relay@b.example', ['y@b.example']]]);
  assert.match(b.received[0].data.toString(), /^From: <relay@b\.example>/m, 'route b rewrites the From');
  assert.match(b.received[0].data.toString(), /^Reply-To: <scanner@a\.example>/m);
  assert.match(a.received[0].data.toString(), /^From: <scanner@a\.example>/m, 'route a leaves it');
  const [entry] = await h.spool.list();
  assert.equal(entry.record.id, id);
  assert.deepEqual(entry.record.recipients.map((r) => [r.address, r.route, r.state]), [['x@a.example', 'tenant-a', 'delivered'], ['y@b.example', 'tenant-b', 'delivered'], ['later@b.example', 'tenant-b', 'pending']]);
  const attempts = h.events.filter((e) => e.type === 'attempt');
  assert.deepEqual(attempts.map((e) => e.type === 'attempt' && [e.route, e.upstream]), [['tenant-a', 'up-a'], ['tenant-b', 'up-b']]);
  laterOk = true;
  h.clock.advance(15 * 60_000);
  await h.manager.runOnce();
  assert.deepEqual(b.received.slice(1).map((r) => r.to), [['later@b.example']], 'only the pending recipient, on its route');
  assert.equal(a.received.length, 1);
  assert.deepEqual(await h.spool.list(), []);
});

test('a record written before routes (no route on its recipients) is still delivered, by the default route', T, async (t) => {
  const a = await startUpstream();
  const b = await startUpstream();
  t.after(() => Promise.all([a.close(), b.close()]));
  const h = await harness(`upstreams:
  - { name: up-a, url: "smtp://127.0.0.1:${a.port}" }
  - { name: up-b, url: "smtp://127.0.0.1:${b.port}" }
routes:
  - { name: only-b, upstreams: [up-b] }
routing:
  default: only-b
`);
  t.after(() => h.close());
  await h.enqueue('old@a.example', ['x@a.example']);
  await h.manager.runOnce();
  assert.equal(a.received.length, 0);
  assert.deepEqual(b.received.map((r) => r.to), [['x@a.example']]);
});
