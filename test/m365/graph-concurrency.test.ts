// Graph request slots (src/m365/graph-concurrency.ts): one set of 4 per app + mailbox, shared by the
// graph:// upstreams of that pair; a released slot goes to the request that waited longest.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfigText } from '../../src/config/load.ts';
import { graphRequestSlots, RequestSlots } from '../../src/m365/graph-concurrency.ts';

test('graph:// upstreams of the same app and mailbox share one set of slots; others have their own', () => {
  const config = parseConfigText(`upstreams:
  - { name: a, url: 'graph://contoso.onmicrosoft.com/scanner@contoso.com', oauth: { clientId: app1, clientSecret: s } }
  - { name: b, url: 'graph://00000000-0000-0000-0000-000000000001/Scanner@contoso.com', oauth: { clientId: app1, clientSecret: s } }
  - { name: c, url: 'graph://contoso.onmicrosoft.com/scanner@contoso.com', oauth: { clientId: app2, clientSecret: s } }
  - { name: d, url: 'graph://contoso.onmicrosoft.com/alerts@contoso.com', maxConnections: 2, oauth: { clientId: app1, clientSecret: s } }
  - { name: smtp, url: 'smtp+starttls://smtp.office365.com', username: scanner@contoso.com, password: p }
`, '/tmp/g.yaml');
  const slots = graphRequestSlots(config.upstreams);
  assert.equal(slots.get('a'), slots.get('b'), 'same app, same mailbox (tenant spelled two ways)');
  assert.notEqual(slots.get('a'), slots.get('c'), 'another app');
  assert.notEqual(slots.get('a'), slots.get('d'), 'another mailbox');
  assert.deepEqual([slots.get('a')!.limit, slots.get('c')!.limit, slots.get('d')!.limit], [4, 4, 2]);
  assert.equal(slots.has('smtp'), false);
});

test('at most `limit` hold a slot; a released slot goes to the first waiter', async () => {
  const slots = new RequestSlots(2);
  const order: string[] = [];
  const r1 = await slots.acquire();
  const r2 = await slots.acquire();
  const third = slots.acquire().then((r) => { order.push('third'); return r; });
  const fourth = slots.acquire().then((r) => { order.push('fourth'); return r; });
  await Promise.resolve();
  assert.deepEqual(order, []);
  assert.equal(slots.inUse(), 2);
  r1();
  r1(); // a second release of the same slot changes nothing
  const r3 = await third;
  assert.deepEqual(order, ['third']);
  assert.equal(slots.inUse(), 2);
  r2();
  const r4 = await fourth;
  r3();
  r4();
  assert.equal(slots.inUse(), 0);
});
