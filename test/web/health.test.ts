// The health words of src/web/health.ts for the states the end-to-end tests cannot provoke cheaply
// (a history writer behind or dropping events, every listener closed), and /healthz's masking of
// addresses. The states a relay can be put in for real are in test/e2e/health.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { historyCheck, listenerChecks, queueCheck, upstreamChecks, withoutAddresses, worst } from '../../src/web/health.ts';

const history = { backend: 'sqlite', ok: true, pending: 0, missed: 0, summary: 'history is up to date' };

test('history: ok while writing; degraded when failing, dropping or far behind', () => {
  assert.equal(historyCheck(history).status, 'ok');
  assert.equal(historyCheck({ ...history, backend: 'off' }).status, 'ok');
  assert.equal(historyCheck({ ...history, ok: false, summary: 'history store is not writable (ECONNREFUSED)' }).status, 'degraded');
  assert.match(historyCheck({ ...history, missed: 3 }).reason, /3 history event\(s\) were dropped/);
  assert.match(historyCheck({ ...history, pending: 5001 }).reason, /behind: 5001 events waiting/);
  assert.equal(historyCheck({ ...history, pending: 5000 }).status, 'ok');
});

test('listeners: none open, one closed or one full is down', () => {
  assert.equal(listenerChecks([])[0].status, 'down');
  const l = { address: '0.0.0.0', port: 25, listening: true, connections: 3, maxConnections: 100 };
  assert.equal(listenerChecks([l])[0].status, 'ok');
  assert.match(listenerChecks([{ ...l, listening: false }])[0].reason, /not accepting connections on 0\.0\.0\.0:25/);
  assert.equal(listenerChecks([{ ...l, connections: 100 }])[0].status, 'down');
});

test('queue age against the threshold; upstreams; the worst word wins', () => {
  const now = Date.parse('2026-12-07T12:00:00Z');
  const e = { id: 'q1', state: 'deferred', mailFrom: '', recipients: [], size: 1, receivedAt: '2026-12-07T11:00:00Z', lastReason: '451 4.4.1 busy' };
  assert.equal(queueCheck([], now, 60_000).status, 'ok');
  assert.equal(queueCheck([e], now, 2 * 3_600_000).status, 'ok');
  assert.match(queueCheck([e], now, 30 * 60_000).reason, /oldest for 60 min \(more than web\.health\.queueAge, 30 min\): message q1 is deferred; its last reason: 451 4\.4\.1 busy/);
  assert.equal(upstreamChecks([]).at(0)?.status, 'degraded');
  assert.equal(upstreamChecks([{ name: 'a', kind: 'smtp', state: 'unknown' }])[0].status, 'ok');
  assert.equal(worst([{ name: 'a', status: 'degraded', reason: '' }, { name: 'b', status: 'down', reason: '' }, { name: 'c', status: 'ok', reason: '' }]), 'down');
  assert.equal(worst([]), 'ok');
});

test('/healthz masks addresses an upstream reply quoted', () => {
  const r = withoutAddresses({ status: 'degraded', at: '', checks: [{ name: 'queue', status: 'degraded', reason: 'its last reason: 550 5.1.1 <bob.smith@fabrikam.example>: Recipient address rejected; user scanner@contoso.com' }] });
  assert.equal(r.checks[0].reason, 'its last reason: 550 5.1.1 <<address>>: Recipient address rejected; user <address>');
});
