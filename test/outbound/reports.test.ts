// sendReport never drops a report: one that cannot be queued goes to badmail with its reason, and the
// sender's report failing does not stop the admin's copy (each is queued on its own).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sendReport } from '../../src/outbound/reports.ts';
import { silentLogger } from '../../src/core/logger.ts';
import type { Spool } from '../../src/queue/spool.ts';
import type { QueueRecord } from '../../src/queue/record.ts';
import type { Outcome } from '../../src/core/types.ts';

const rec = {
  version: 1, id: '20261207T120000Z-abcdef0123-0001', attempts: 1,
  envelope: { mailFrom: 'scanner@contoso.test', recipients: ['gone@example.org'], client: { address: '127.0.0.1', source: 'smtp' }, receivedAt: '2026-12-07T12:00:00.000Z', size: 60, subject: 'Scan 42' },
  recipients: [{ address: 'gone@example.org', state: 'failed' }],
} as unknown as QueueRecord;
const failed: Outcome[] = [{ recipient: 'gone@example.org', action: 'failed', status: '5.1.1', replyCode: 550, diagnostic: '550 5.1.1 no such user', transport: 'smtp', at: '2026-12-07T12:00:01.000Z' }];

function spoolRefusing(refuse: (recipients: string[]) => boolean) {
  const queued: string[][] = [];
  const kept: Array<{ content: string; reason: string; name: string }> = [];
  const spool = {
    show: async () => ({ headerPreview: 'From: <scanner@contoso.test>\r\nSubject: Scan 42\r\n' }),
    readMessage: async () => Buffer.from(''),
    enqueue: async (env: { recipients: string[] }) => {
      if (refuse(env.recipients)) throw new Error('no space left on device');
      queued.push(env.recipients);
      return 'report-id';
    },
    quarantine: async (content: Buffer, reason: string, name: string) => { kept.push({ content: content.toString(), reason, name }); },
  } as unknown as Spool;
  return { spool, queued, kept };
}

const config = { ndr: { adminCopy: 'admin@contoso.test' }, hostnameResolved: 'relay.test', upstreams: [] };

test('a report that cannot be queued is kept in badmail, and the other report still goes', async () => {
  const s = spoolRefusing((to) => to.includes('scanner@contoso.test'));
  await sendReport(config, s.spool, silentLogger(), rec, 'failed', failed, new Date('2026-12-07T12:00:02Z'));
  assert.deepEqual(s.queued, [['admin@contoso.test']], 'the admin copy is queued although the sender\'s report failed');
  assert.equal(s.kept.length, 1);
  assert.match(s.kept[0].reason, /could not queue this delivery report \(failed\) about message 20261207T120000Z-abcdef0123-0001 for scanner@contoso\.test: no space left on device/);
  // the report kept is the sender's (its words), not the admin's copy
  assert.match(s.kept[0].content, /To: <?scanner@contoso\.test>?/);
  assert.doesNotMatch(s.kept[0].content, /\.BAD/);
});

test('both reports refused: both are kept, each with its own recipient', async () => {
  const s = spoolRefusing(() => true);
  await sendReport(config, s.spool, silentLogger(), rec, 'failed', failed, new Date('2026-12-07T12:00:02Z'));
  assert.deepEqual(s.queued, []);
  assert.deepEqual(s.kept.map((k) => /for (\S+):/.exec(k.reason)?.[1]), ['scanner@contoso.test', 'admin@contoso.test']);
});
