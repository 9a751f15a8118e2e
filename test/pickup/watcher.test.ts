// The pickup folder on a real file system: files dropped, half-written, malformed, and a restart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseConfigText } from '../../src/config/load.ts';
import { silentLogger } from '../../src/core/logger.ts';
import { createPickupWatcher, type PickupWatcher } from '../../src/pickup/watcher.ts';
import { MemoryEnqueuer } from '../helpers/memory-enqueuer.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function setup(settle = '200ms', interval = '100ms'): { dir: string; folder: string; queue: MemoryEnqueuer; watcher: PickupWatcher; cleanup(): Promise<void> } {
  const dir = mkdtempSync(path.join(tmpdir(), 'smarthost-pickup-'));
  const config = parseConfigText(`hostname: relay.test\nmailroot: mailroot\npickup:\n  settle: ${settle}\n  interval: ${interval}\n`, path.join(dir, 'smarthost.yaml'));
  const queue = new MemoryEnqueuer();
  const watcher = createPickupWatcher(config, { enqueue: queue, quarantine: queue, logger: silentLogger() });
  const folder = path.join(dir, 'mailroot', 'pickup');
  return {
    dir,
    folder,
    queue,
    watcher,
    async cleanup() {
      await watcher.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const EMAIL_TXT = 'FROM: invoicing@shortstraw.be\r\nTO: oliver@shortstraw.be\r\nSUBJECT: Test email\r\n\r\nThis is a test email sent from my SMTP server\r\n';

test('the seed\'s Email.txt dropped into pickup/ is queued and disappears; envelope source is pickup', async () => {
  const t = setup();
  try {
    await t.watcher.start();
    writeFileSync(path.join(t.folder, 'Email.txt'), EMAIL_TXT);
    await t.queue.waitFor(1, 5000);
    const m = t.queue.messages[0];
    assert.equal(m.envelope.client.source, 'pickup');
    assert.equal(m.envelope.mailFrom, 'invoicing@shortstraw.be');
    assert.deepEqual(m.envelope.recipients, ['oliver@shortstraw.be']);
    assert.equal(m.envelope.size, m.content.length);
    for (let i = 0; i < 40 && readdirSync(t.folder).length; i++) await sleep(25);
    assert.deepEqual(readdirSync(t.folder), [], 'the file is removed once queued');
  } finally {
    await t.cleanup();
  }
});

test('a half-written file is not taken until it stops changing; temp and dot names are never taken', async () => {
  const t = setup('300ms', '1h');
  try {
    mkdirSync(t.folder, { recursive: true });
    const file = path.join(t.folder, 'scan.eml');
    writeFileSync(file, 'X-Sender: scanner@example.org\r\nX-Receiver: boss@example.org\r\nSubject: half');
    writeFileSync(path.join(t.folder, 'upload.tmp'), EMAIL_TXT);
    writeFileSync(path.join(t.folder, '.hidden'), EMAIL_TXT);
    const t0 = Date.now();
    // Keep writing for a while, scanning in between: nothing may be taken.
    for (let i = 0; i < 6; i++) {
      const r = await t.watcher.scanOnce();
      assert.deepEqual(r.queued, [], `taken after ${Date.now() - t0} ms while still being written`);
      appendFileSync(file, `\r\nline ${i}`);
      await sleep(100);
    }
    appendFileSync(file, '\r\n\r\nthe end\r\n');
    assert.deepEqual((await t.watcher.scanOnce()).queued, []);
    await sleep(350);
    const r = await t.watcher.scanOnce();
    assert.equal(r.queued.length, 1);
    const m = t.queue.messages[0];
    assert.match(m.content.toString(), /the end\r\n$/, 'the whole file was queued');
    assert.deepEqual(readdirSync(t.folder).sort(), ['.hidden', 'upload.tmp']);
  } finally {
    await t.cleanup();
  }
});

test('a malformed file goes to badmail (quarantine) with its reason; nothing is deleted silently', async () => {
  const t = setup('0ms', '1h');
  try {
    mkdirSync(t.folder, { recursive: true });
    writeFileSync(path.join(t.folder, 'junk.bin'), Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0x02, 0x01, 0x01, 0x00, 0x00]));
    writeFileSync(path.join(t.folder, 'norcpt.eml'), 'From: a@example.org\r\nSubject: x\r\n\r\nbody\r\n');
    const r = await t.watcher.scanOnce();
    assert.deepEqual(r.quarantined.sort(), ['junk.bin', 'norcpt.eml']);
    assert.equal(t.queue.messages.length, 0);
    const junk = t.queue.quarantined.find((q) => q.name === 'junk.bin')!;
    assert.match(junk.reason, /binary data/);
    assert.deepEqual([...junk.content], [0x7f, 0x45, 0x4c, 0x46, 0x02, 0x01, 0x01, 0x00, 0x00], 'the original bytes are kept');
    assert.match(t.queue.quarantined.find((q) => q.name === 'norcpt.eml')!.reason, /No recipients/);
    assert.deepEqual(readdirSync(t.folder), []);
  } finally {
    await t.cleanup();
  }
});

test('plain RFC 5322 file: Bcc recipients get it, the Bcc header is removed', async () => {
  const t = setup('0ms', '1h');
  try {
    mkdirSync(t.folder, { recursive: true });
    writeFileSync(path.join(t.folder, 'm.eml'), 'From: app@example.org\nTo: a@example.com\nBcc: hidden@example.com\nSubject: s\n\nbody\n');
    await t.watcher.scanOnce();
    const m = t.queue.messages[0];
    assert.deepEqual(m.envelope.recipients, ['a@example.com', 'hidden@example.com']);
    assert.doesNotMatch(m.content.toString(), /hidden|Bcc/i);
  } finally {
    await t.cleanup();
  }
});

test('enqueue failure puts the file back; a claimed file left by a crash is taken again after restart', async () => {
  const t = setup('0ms', '1h');
  try {
    mkdirSync(t.folder, { recursive: true });
    writeFileSync(path.join(t.folder, 'a.eml'), EMAIL_TXT);
    t.queue.failWith = new Error('spool unavailable');
    const r1 = await t.watcher.scanOnce();
    assert.deepEqual(r1.queued, []);
    assert.ok(existsSync(path.join(t.folder, 'a.eml')), 'the file is back in pickup/');
    t.queue.failWith = undefined;
    // A crash between the claim and the removal leaves ".processing-<name>".
    writeFileSync(path.join(t.folder, '.processing-b.eml'), EMAIL_TXT);
    await t.watcher.start();
    await t.queue.waitFor(2, 5000);
    for (let i = 0; i < 40 && readdirSync(t.folder).length; i++) await sleep(25);
    assert.deepEqual(readdirSync(t.folder), []);
  } finally {
    await t.cleanup();
  }
});

test('a file over the message size limit goes to badmail with that reason', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'smarthost-pickup-'));
  try {
    const config = parseConfigText('hostname: relay.test\nmailroot: mailroot\npickup:\n  settle: 0ms\nlimits:\n  maxMessageSize: 1KB\n', path.join(dir, 'smarthost.yaml'));
    const queue = new MemoryEnqueuer();
    const watcher = createPickupWatcher(config, { enqueue: queue, quarantine: queue, logger: silentLogger() });
    const folder = path.join(dir, 'mailroot', 'pickup');
    mkdirSync(folder, { recursive: true });
    writeFileSync(path.join(folder, 'big.eml'), `${EMAIL_TXT}${'x'.repeat(2000)}\r\n`);
    const r = await watcher.scanOnce();
    assert.deepEqual(r.quarantined, ['big.eml']);
    assert.match(queue.quarantined[0].reason, /larger than the message size limit/);
    await watcher.stop();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
