// The handoff journal (core/types.ts HandoffJournal): the SMTP transport, in its delivery thread as
// the relay runs it, notes in the spool's delivered.log the recipients an upstream took, the moment
// it reads the reply. A crash before the outcome reaches the delivery manager then costs no second
// delivery: recovery marks those recipients delivered, and removes a message with none left pending.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { openSpool } from '../../src/queue/spool.ts';
import { ManualClock } from '../../src/core/clock.ts';
import { silentLogger } from '../../src/core/logger.ts';
import { upstreamSchema } from '../../src/config/sections/upstreams.ts';
import { createThreadedSmtpTransport } from '../../src/transports/smtp-thread.ts';
import type { Envelope, OutboundMessage, QueueEvent } from '../../src/core/types.ts';
import type { Spool } from '../../src/queue/spool.ts';
import { startUpstream } from '../transports/upstream-server.ts';

const T = { timeout: 60_000 };
const env = (recipients: string[]): Envelope => ({ mailFrom: 'printer@example.com', recipients, client: { address: '127.0.0.1', source: 'smtp' }, receivedAt: new Date().toISOString(), size: 0 });

/** The message as the delivery manager hands it to a transport (manager.ts outboundMessage). */
function outbound(spool: Spool, id: string, recipients: string[], size: number): OutboundMessage {
  return {
    id, mailFrom: 'printer@example.com', recipients, size,
    open: () => spool.openMessage(id), read: () => spool.readMessage(id), locate: () => spool.locateMessage(id),
    journal: spool.handoffJournal(id),
  };
}

test('recipients an upstream took are noted at once; after a crash before the outcome was recorded, recovery does not send them again', T, async (t) => {
  const root = await mkdtemp(path.join(os.tmpdir(), 'sh-journal-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  const up = await startUpstream({ rcpt: (a) => (a.startsWith('later') ? [451, '4.2.0 Try again later'] : undefined) });
  t.after(() => up.close());
  const tr = await createThreadedSmtpTransport(upstreamSchema.parse({ name: 'plain', url: `smtp://127.0.0.1:${up.port}` }), { logger: silentLogger(), hostname: 'relay.test' });
  t.after(() => tr.close());

  const first = await openSpool({ mailrootPath: root }, { clock: new ManualClock(), logger: silentLogger() });
  const body = Buffer.from('Subject: scan\r\n\r\npage 1\r\n');
  const whole = await first.enqueue(env(['good@x.org']), body);
  const split = await first.enqueue(env(['good@x.org', 'later@x.org']), body);
  const untouched = await first.enqueue(env(['good@x.org']), body);
  for (const id of [whole, split, untouched]) assert.ok(await first.claim(id));
  const a = await tr.send(outbound(first, whole, ['good@x.org'], body.length));
  const b = await tr.send(outbound(first, split, ['good@x.org', 'later@x.org'], body.length));
  assert.deepEqual(a.map((o) => o.action), ['delivered']);
  assert.deepEqual(b.map((o) => o.action), ['delivered', 'delayed']);
  assert.equal(up.received.length, 2);
  // noted by the delivery thread, not by the manager (nothing was settled)
  const log = await readFile(path.join(root, 'delivered.log'), 'utf8');
  assert.deepEqual(log.split('\n').filter(Boolean).sort(), [`${whole}\tgood@x.org`, `${split}\tgood@x.org`].sort());

  // The crash: the outcomes never reached the manager; all three are still in active/.
  await first.close();
  assert.equal((await readdir(path.join(root, 'active'))).length, 3);
  const events: QueueEvent[] = [];
  const spool = await openSpool({ mailrootPath: root }, { clock: new ManualClock(), logger: silentLogger(), events: (e) => events.push(e) });
  t.after(() => spool.close());
  assert.deepEqual(events.map((e) => e.type === 'state' && [e.id, e.state]), [[whole, 'delivered']], 'history learns how the removed one ended');
  const list = await spool.list();
  assert.deepEqual(list.map((e) => e.record.id).sort(), [split, untouched].sort(), 'the message taken whole is not queued again');
  const s = list.find((e) => e.record.id === split)!;
  assert.deepEqual(s.record.recipients.map((r) => [r.address, r.state]), [['good@x.org', 'delivered'], ['later@x.org', 'pending']], 'only the recipient not taken is left');
  assert.equal(s.record.possibleDuplicate, true);
  const u = list.find((e) => e.record.id === untouched)!;
  assert.deepEqual(u.record.recipients.map((r) => r.state), ['pending'], 'one never sent is put back whole');
  assert.deepEqual(await readdir(path.join(root, 'active')), []);
  assert.equal(await readFile(path.join(root, 'delivered.log'), 'utf8'), '', 'emptied once recovery has used it');
});
