// Microsoft 365 budgets are per sending mailbox, shared by every upstream that sends as it (issue 15.2).
// A ManualClock walks the minute and the quota window; the upstream is a real SMTP server on loopback.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { harness } from './harness.ts';
import { startUpstream } from '../transports/upstream-server.ts';
import { createDeliveryManager } from '../../src/outbound/manager.ts';
import { silentLogger } from '../../src/core/logger.ts';
import { parseConfigText } from '../../src/config/load.ts';
import { mailboxConnectionCaps, classifyQuota } from '../../src/m365/quota.ts';
import { explainReply } from '../../src/outbound/explain.ts';

const T = { timeout: 60_000 };
const MIN = 60_000;

/** Two upstreams that sign in as the same Microsoft 365 mailbox (xoauth2 makes them SMTP AUTH routes). */
function twoRoutes(port: number, extra = ''): string {
  const u = (name: string) => `  - { name: ${name}, url: "smtp://127.0.0.1:${port}", auth: none, mailbox: scanner@contoso.com, maxMessagesPerMinute: 30${extra} }`;
  return `upstreams:\n${u('a')}\n${u('b')}\n`;
}

test('two upstreams sending as the same mailbox share its 30 messages a minute', T, async (t) => {
  const up = await startUpstream();
  t.after(() => up.close());
  const h = await harness(twoRoutes(up.port));
  t.after(() => h.close());
  for (let i = 0; i < 40; i++) await h.enqueue('scanner@contoso.com', [`r${i}@x.org`], 'scan', { upstream: i % 2 ? 'a' : 'b' });
  await h.manager.runOnce();
  assert.equal(up.received.length, 30, 'one minute: 30 messages for the mailbox, both upstreams together');
  const waiting = await h.spool.list({ state: 'deferred' });
  assert.equal(waiting.length, 10);
  assert.match(waiting[0].record.lastError ?? '', /sending mailbox's pace/);
  assert.ok(waiting.every((e) => e.record.nextAttemptAt <= h.clock.now() + MIN));
  h.clock.advance(MIN);
  await h.manager.runOnce();
  assert.equal(up.received.length, 40, 'the rest a minute later');
  const [q] = h.manager.quotas();
  assert.equal(q.key, 'mailbox:scanner@contoso.com');
  assert.deepEqual(q.upstreams, ['a', 'b']);
  assert.equal(q.messagesLastMinute, 10);
  assert.equal(q.maxMessagesPerMinute, 30);
});

test('554 5.2.0 SubmissionQuotaExceeded holds every message of the mailbox (no bounce) until the window passes', T, async (t) => {
  let over = true;
  const up = await startUpstream({ data: () => (over ? [554, '5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process message due to a permanent exception'] : undefined) });
  t.after(() => up.close());
  const h = await harness(`${twoRoutes(up.port)}ndr: { to: sender }\n`);
  t.after(() => h.close());
  await h.enqueue('scanner@contoso.com', ['one@x.org'], 'scan', { upstream: 'a' });
  await h.manager.runOnce();
  await h.enqueue('scanner@contoso.com', ['two@x.org'], 'scan', { upstream: 'b' });
  await h.manager.runOnce();
  const tries = h.events.filter((e) => e.type === 'attempt').length;
  assert.equal(tries, 1, 'the second message (other upstream, same mailbox) is not even tried');
  assert.deepEqual(await h.badmail(), [], 'nothing bounced');
  const waiting = await h.spool.list({ state: 'deferred' });
  assert.equal(waiting.length, 2, 'no NDR queued');
  for (const e of waiting) {
    assert.match(e.record.lastError ?? '', /over Microsoft's sending quota/);
    assert.equal(e.record.nextAttemptAt, h.clock.now() + 60 * MIN);
    assert.equal(e.record.recipients[0].attempts, 0, 'a quota is not an attempt (no expiry for it)');
  }
  const [q] = h.manager.quotas();
  assert.equal(q.heldUntil, h.clock.now() + 60 * MIN);
  over = false;
  up.received.length = 0; // the upstream records refused DATA too
  h.clock.advance(59 * MIN);
  await h.manager.runOnce();
  assert.equal(h.events.filter((e) => e.type === 'attempt').length, tries, 'still held');
  h.clock.advance(MIN);
  await h.manager.runOnce();
  assert.deepEqual(up.received.map((r) => r.to[0]).sort(), ['one@x.org', 'two@x.org']);
  assert.deepEqual(await h.spool.list(), []);
});

test('a restart keeps the hold (pacing.json), so a restarted relay does not hammer a mailbox over quota', T, async (t) => {
  const up = await startUpstream({ data: () => [554, '5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException'] });
  t.after(() => up.close());
  const h = await harness(twoRoutes(up.port));
  t.after(() => h.close());
  const file = path.join(h.root, 'pacing.json');
  const first = createDeliveryManager(h.config, { spool: h.spool, transports: h.transports, logger: silentLogger(), clock: h.clock, pacingFile: file });
  await h.enqueue('scanner@contoso.com', ['one@x.org']);
  await first.runOnce();
  await first.stop();
  const second = createDeliveryManager(h.config, { spool: h.spool, transports: h.transports, logger: silentLogger(), clock: h.clock, pacingFile: file });
  assert.ok((second.quotas()[0].heldUntil ?? 0) > h.clock.now(), 'held after the restart');
  await second.stop();
  writeFileSync(file, '{}');
});

test('4.7.5xx backs off doubling; 5.2.25x parks every upstream of the mailbox, once, no loop', T, async (t) => {
  let reply: [number, string] | undefined = [451, '4.7.500 Server busy. Please try again later from [203.0.113.9]. (AS761)'];
  const up = await startUpstream({ data: () => reply });
  t.after(() => up.close());
  const h = await harness(twoRoutes(up.port));
  t.after(() => h.close());
  await h.enqueue('scanner@contoso.com', ['one@x.org'], 'scan', { upstream: 'a' });
  await h.manager.runOnce();
  let [e] = await h.spool.list({ state: 'deferred' });
  assert.equal(e.record.nextAttemptAt - h.clock.now(), MIN);
  h.clock.advance(MIN);
  await h.manager.runOnce();
  [e] = await h.spool.list({ state: 'deferred' });
  assert.equal(e.record.nextAttemptAt - h.clock.now(), 2 * MIN, 'doubled');
  reply = [550, '5.2.252 SendAsDenied; sender throttled due to continuous send as denied errors'];
  h.clock.advance(2 * MIN);
  await h.manager.runOnce();
  assert.deepEqual(h.manager.upstreams().map((u) => [u.name, u.state]), [['a', 'parked'], ['b', 'parked']]);
  const attempts = h.events.filter((x) => x.type === 'attempt').length;
  await h.enqueue('scanner@contoso.com', ['two@x.org'], 'scan', { upstream: 'b' });
  h.clock.advance(5 * MIN);
  await h.manager.runOnce();
  assert.equal(h.events.filter((x) => x.type === 'attempt').length, attempts, 'nothing tried while parked');
  assert.deepEqual(await h.badmail(), []);
});

test('5.7.233 (tenant external-recipient limit) holds only external recipients; internal ones go', T, async (t) => {
  let terrl = true;
  const up = await startUpstream({ rcpt: (a) => (terrl && !a.endsWith('@contoso.com') ? [550, '5.7.233 Message can\'t be submitted because the sender\'s submission quota was exceeded (tenant external recipient rate limit)'] : undefined) });
  t.after(() => up.close());
  const h = await harness(twoRoutes(up.port));
  t.after(() => h.close());
  await h.enqueue('scanner@contoso.com', ['ext@fabrikam.example', 'in@contoso.com']);
  await h.manager.runOnce();
  assert.deepEqual(up.received.map((r) => r.to), [['in@contoso.com']]);
  await h.enqueue('scanner@contoso.com', ['in2@contoso.com', 'ext2@fabrikam.example'], 'scan', { upstream: 'b' });
  await h.manager.runOnce();
  assert.deepEqual(up.received.map((r) => r.to), [['in@contoso.com'], ['in2@contoso.com']], 'the external one of the next message waits without being tried');
  assert.deepEqual(await h.badmail(), []);
  terrl = false;
  h.clock.advance(60 * MIN);
  await h.manager.runOnce();
  assert.deepEqual(up.received.slice(2).flatMap((r) => r.to).sort(), ['ext2@fabrikam.example', 'ext@fabrikam.example']);
});

test('connection pools of upstreams sharing a mailbox hold 3 connections together; m365 explain knows the quota codes', () => {
  const ups = parseConfigText(`upstreams:
  - { name: a, url: 'smtp+starttls://smtp.office365.com:587', username: s@contoso.com, password: p }
  - { name: b, url: 'smtp+starttls://smtp.office365.com:587', username: s@contoso.com, password: p }
  - { name: c, url: 'smtp+starttls://smtp.office365.com:587', username: other@contoso.com, password: p, maxConnections: 2 }
  - { name: isp, url: 'smtp+starttls://mail.example.net' }
`, '/tmp/q.yaml').upstreams;
  const caps = mailboxConnectionCaps(ups);
  assert.deepEqual([caps.get('a'), caps.get('b'), caps.get('c'), caps.get('isp')], [2, 1, 2, 10]);
  assert.equal(classifyQuota({ status: '4.3.2', diagnostic: '432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded' }, 'smtp')?.kind, 'connections');
  assert.equal(classifyQuota({ replyCode: 429, status: '4.7.0', diagnostic: 'ApplicationThrottled', retryAfterMs: 5000 }, 'graph')?.holdMs, 5000);
  assert.equal(classifyQuota({ status: '5.7.705', diagnostic: '550 5.7.705 Access denied, tenant has exceeded threshold' }, 'smtp')?.scope, 'tenant');
  assert.equal(classifyQuota({ status: '5.1.1', diagnostic: '550 5.1.1 User unknown' }, 'smtp'), undefined);
  for (const [reply, words] of [
    ['554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException', /10,000 recipients/],
    ['432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded', /3 simultaneous/],
    ['550 5.7.233 tenant external recipient rate limit', /external recipients/],
    ['550 5.7.232 trial tenant external recipient rate limit', /external recipients/],
  ] as const) {
    const [code, status] = reply.split(' ');
    assert.match(explainReply(Number(code), status, reply).meaning, words, reply);
  }
});
