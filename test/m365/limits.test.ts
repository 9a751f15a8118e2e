import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfigText } from '../../src/config/load.ts';
import { effectiveLimits, m365Route, splitRecipients } from '../../src/m365/limits.ts';

const ups = parseConfigText(`upstreams:
  - { name: smtp, url: 'smtp+starttls://smtp.office365.com:587', username: a@contoso.com, password: p }
  - { name: graph, url: 'graph://contoso.onmicrosoft.com/a@contoso.com', oauth: { clientId: c, clientSecret: s } }
  - { name: mx, url: 'connector://contoso.com' }
  - { name: isp, url: 'smtp+starttls://mail.example.net', maxRecipientsPerMessage: 50 }
  - { name: tuned, url: 'smtp+starttls://smtp.office365.com', maxRecipientsPerMessage: 1000, maxMessagesPerMinute: 10 }
`, '/tmp/l.yaml').upstreams;

test("Microsoft's limits fill in what the config leaves open; explicit values win; other hosts untouched", () => {
  assert.deepEqual(ups.map(m365Route), ['smtp-auth', 'graph', 'connector', undefined, 'smtp-auth']);
  assert.deepEqual(effectiveLimits(ups[0]), { maxRecipientsPerMessage: 500, maxMessagesPerMinute: 30, maxRecipientsPerDay: 10000, maxConnections: 10 });
  assert.equal(effectiveLimits(ups[1]).maxConnections, 4);
  assert.equal(effectiveLimits(ups[1]).maxMessagesPerMinute, undefined);
  assert.equal(effectiveLimits(ups[2]).maxRecipientsPerDay, undefined);
  assert.equal(effectiveLimits(ups[3]).maxRecipientsPerMessage, 50);
  assert.equal(effectiveLimits(ups[3]).maxMessagesPerMinute, undefined);
  assert.deepEqual([effectiveLimits(ups[4]).maxRecipientsPerMessage, effectiveLimits(ups[4]).maxMessagesPerMinute], [1000, 10]);
});

test('a 1,500-recipient message splits into 3 × 500, order kept, nothing lost', () => {
  const rcpts = Array.from({ length: 1500 }, (_, i) => `u${i}@contoso.com`);
  const parts = splitRecipients(rcpts, effectiveLimits(ups[0]).maxRecipientsPerMessage);
  assert.deepEqual(parts.map((p) => p.length), [500, 500, 500]);
  assert.deepEqual(parts.flat(), rcpts);
  assert.deepEqual(splitRecipients(['a'], 500), [['a']]);
});
