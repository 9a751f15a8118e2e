import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planBatch } from '../../src/history/plan.ts';

test("header repairs made at accept are shown in the message's history (its accepted event)", () => {
  const envelope = { mailFrom: 'scan@example.org', recipients: ['a@example.org'], client: { address: '192.168.1.50', source: 'smtp' as const }, receivedAt: '2026-12-07T10:00:00Z', size: 10 };
  const plan = planBatch([
    { type: 'accepted', id: 'A', envelope: { ...envelope, repairs: ['added Date: (the client sent none)', 'removed the Bcc: header (its recipients stay in the envelope)'] }, at: '2026-12-07T10:00:00Z' },
    { type: 'accepted', id: 'B', envelope, at: '2026-12-07T10:00:00Z' },
  ]);
  assert.equal(plan.events[0].reason, 'from 192.168.1.50; headers repaired: added Date: (the client sent none); removed the Bcc: header (its recipients stay in the envelope)');
  assert.equal(plan.events[1].reason, 'from 192.168.1.50');
});
