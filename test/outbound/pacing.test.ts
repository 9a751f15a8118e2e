// The daily recipient budget (Microsoft 365: 10,000 a day per mailbox) survives a restart: the
// pacer's snapshot and restore, the saved file, and a delivery manager started again on the same
// mailroot, which keeps making the rest wait instead of sending past the budget.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { UpstreamPacer } from '../../src/outbound/pacing.ts';
import { loadPacing } from '../../src/outbound/pacing-store.ts';
import { createDeliveryManager } from '../../src/outbound/manager.ts';
import { silentLogger } from '../../src/core/logger.ts';
import type { OutboundMessage, Outcome } from '../../src/core/types.ts';
import { harness } from './harness.ts';

const MINUTE = 60_000;
const DAY = 86_400_000;

test('snapshot sums per minute, stamped at the minute\'s end; restore keeps only the last day and well-formed entries', () => {
  const now = Date.UTC(2026, 10, 25, 12, 0, 30);
  const p = new UpstreamPacer({ maxRecipientsPerDay: 100 });
  assert.equal(p.reserve(now - 5 * MINUTE, 10), 10);
  assert.equal(p.reserve(now - 5 * MINUTE + 1000, 5), 5);
  assert.equal(p.reserve(now, 20), 20);
  const snap = p.snapshot(now);
  assert.deepEqual(snap, [[Math.ceil((now - 5 * MINUTE) / MINUTE) * MINUTE, 15], [Math.ceil(now / MINUTE) * MINUTE, 20]]);
  const q = new UpstreamPacer({ maxRecipientsPerDay: 100 });
  q.restore([...snap, [now - DAY - 1, 50], ['x', 1], [now, -3], [now, 1.5], 'junk'], now);
  assert.equal(q.reserve(now, 100), 65, '35 of 100 already spent; the malformed and expired entries count for nothing');
  assert.equal(q.reserve(now, 1), 0);
  // stamped at the minute's end: never frees the budget before the real counts would have
  assert.equal(q.waitUntil(now), Math.ceil((now - 5 * MINUTE) / MINUTE) * MINUTE + DAY);
});

test('a restarted delivery manager keeps the day\'s budget: what was spent before the restart still counts', { timeout: 30_000 }, async (t) => {
  const h = await harness('upstreams:\n  - { name: m365, url: "smtp://127.0.0.1:1", maxRecipientsPerDay: 3 }\n');
  t.after(() => h.close());
  const file = path.join(h.root, 'pacing.json');
  const sent: string[][] = [];
  const stub = {
    kind: 'smtp', name: 'm365',
    async send(m: OutboundMessage): Promise<Outcome[]> {
      sent.push(m.recipients);
      return m.recipients.map((r) => ({ recipient: r, action: 'delivered' as const, status: '2.0.0', transport: 'smtp', at: new Date(h.clock.now()).toISOString() }));
    },
    async close() {},
  };
  const first = createDeliveryManager(h.config, { spool: h.spool, transports: [stub], logger: silentLogger(), clock: h.clock, pacingFile: file });
  await h.enqueue('scan@contoso.com', ['1@x.org', '2@x.org']);
  await first.runOnce();
  await first.stop();
  assert.deepEqual(sent, [['1@x.org', '2@x.org']]);
  const counts = JSON.parse(readFileSync(file, 'utf8')) as Record<string, Array<[number, number]>>;
  // kept per budget: `upstream:NAME` for a smart host, `mailbox:ADDRESS` for a Microsoft 365 mailbox
  assert.equal(counts['upstream:m365'].reduce((n, [, c]) => n + c, 0), 2, 'saved on stop');

  const second = createDeliveryManager(h.config, { spool: h.spool, transports: [stub], logger: silentLogger(), clock: h.clock, pacingFile: file });
  await h.enqueue('scan@contoso.com', ['3@x.org', '4@x.org']);
  await second.runOnce();
  assert.deepEqual(sent.slice(1), [['3@x.org']], 'one recipient left in the day after the restart, not three');
  const [waiting] = await h.spool.list();
  assert.deepEqual(waiting.record.recipients.map((r) => r.state), ['delivered', 'pending']);
  h.clock.advance(DAY + MINUTE);
  await second.runOnce();
  assert.deepEqual(sent.slice(2), [['4@x.org']]);
  await second.stop();
});

test('an unreadable pacing file means starting from zero, with a warning, never a stopped relay', (t) => {
  const file = path.join(os.tmpdir(), `pacing-${process.pid}-${Date.now()}.json`);
  t.after(() => rmSync(file, { force: true }));
  writeFileSync(file, '{ not json');
  const warnings: string[] = [];
  const logger = { ...silentLogger(), warn: (_o: unknown, msg: string) => warnings.push(msg) } as unknown as ReturnType<typeof silentLogger>;
  assert.deepEqual(loadPacing(file, logger), {});
  assert.match(warnings.join('\n'), /not valid JSON: starting from zero/);
  assert.deepEqual(loadPacing(`${file}.missing`, logger), {});
  assert.equal(warnings.length, 1, 'a missing file is simply no counts yet');
});
