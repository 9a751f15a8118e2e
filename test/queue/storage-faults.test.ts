// Storage faults: the spool on a full file system (a 2 MB tmpfs this test mounts; skipped with a
// reason where mounting is not permitted), a read-only mailroot, a mailroot whose parent is
// missing, and damaged queue files at recovery.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { openSpool } from '../../src/queue/spool.ts';
import { readQueueFile } from '../../src/queue/queue-file.ts';
import { newQueueId } from '../../src/core/ids.ts';
import { ManualClock } from '../../src/core/clock.ts';
import { silentLogger } from '../../src/core/logger.ts';
import { createSmtpListener } from '../../src/inbound/listener.ts';
import { createPickupWatcher } from '../../src/pickup/watcher.ts';
import { makeConfig } from '../inbound/setup.ts';
import { RawClient } from '../inbound/raw-client.ts';

/** Mounts a small tmpfs at a fresh folder; undefined (and why) where that is not permitted. */
function mountTmpfs(size: string): { dir: string; unmount(): void } | { skip: string } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'smarthost-fullfs-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    return { skip: `mounting a tmpfs is not permitted here (needs root / CAP_SYS_ADMIN): ${String((e as { stderr?: Buffer }).stderr ?? e).trim()}` };
  }
  return {
    dir,
    unmount() {
      execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Fills the file system holding `file` to the last byte (ENOSPC). */
async function fill(file: string): Promise<void> {
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  const { open } = await import('node:fs/promises');
  const fh = await open(file, 'w');
  try {
    for (;;) await fh.write(chunk);
  } catch (e) {
    assert.equal((e as NodeJS.ErrnoException).code, 'ENOSPC');
  } finally {
    await fh.close();
  }
}

async function sendOne(port: number, body: string): Promise<{ code: number; text: string }> {
  const c = await RawClient.connect(port);
  await c.reply();
  await c.cmd('EHLO client.test');
  assert.equal((await c.cmd('MAIL FROM:<scanner@example.org>')).code, 250);
  assert.equal((await c.cmd('RCPT TO:<someone@example.com>')).code, 250);
  assert.equal((await c.cmd('DATA')).code, 354);
  c.write(`Subject: storage\r\n\r\n${body}\r\n.\r\n`);
  const reply = await c.reply(20_000);
  c.close();
  return reply;
}

/** Every queue file in the spool's folders reads back whole (envelope, size and checksum). */
async function assertNoDamagedFile(root: string): Promise<number> {
  let n = 0;
  for (const folder of ['incoming', 'active', 'deferred', 'hold']) {
    for (const name of await readdir(path.join(root, folder))) {
      const { record } = await readQueueFile(path.join(root, folder, name), name.replace(/\.eml$/, ''));
      assert.ok(record.envelope.size >= 0);
      n++;
    }
  }
  assert.deepEqual(await readdir(path.join(root, 'badmail')), []);
  return n;
}

test('spool on a full file system: 452 4.3.1 over SMTP, pickup files wait, nothing left damaged, accepted again once space returns', async (t) => {
  const fs = mountTmpfs('2m');
  if ('skip' in fs) return t.skip(fs.skip);
  const logs: string[] = [];
  const logger = pino({ level: 'info' }, new Writable({ write(c, _e, done) { logs.push(c.toString()); done(); } }));
  const config = makeConfig(`listen:\n  - address: 127.0.0.1\n    port: 1\naccess:\n  relay:\n    mode: only\n    list: [127.0.0.1]\npickup:\n  settle: 0s\n`, fs.dir);
  const spool = await openSpool(config, { clock: new ManualClock(), logger: silentLogger() });
  const listener = createSmtpListener(config, { enqueue: spool, logger });
  const [{ port }] = await listener.start();
  const pickup = createPickupWatcher(config, { enqueue: spool, quarantine: spool, logger: silentLogger(), clock: new ManualClock() });
  const filler = path.join(fs.dir, 'filler');
  try {
    assert.equal((await sendOne(port, 'before the disk filled up')).code, 250);
    // a pickup file written while there was room
    await writeFile(path.join(config.mailrootPath, 'pickup', 'scan.eml'), 'X-Sender: scanner@example.org\r\nX-Receiver: someone@example.com\r\nSubject: from pickup\r\n\r\nscanned\r\n');
    await fill(filler);
    // small (written from memory) and large (streamed) messages alike
    for (const body of ['small', 'x'.repeat(400_000).replace(/(.{76})/g, '$1\r\n')]) {
      const reply = await sendOne(port, body);
      assert.equal(reply.code, 452, reply.text);
      assert.match(reply.text, /^4\.3\.1 .*file system is full/);
    }
    const scan = await pickup.scanOnce();
    assert.deepEqual(scan.queued, []);
    assert.deepEqual(await readdir(path.join(config.mailrootPath, 'pickup')), ['scan.eml'], 'the pickup file waits where it was');
    assert.equal(await assertNoDamagedFile(config.mailrootPath), 1, 'only the message accepted before');
    assert.deepEqual((await readdir(path.join(config.mailrootPath, 'tmp'))).filter((n) => !n.startsWith('spare-')), [], 'no half-written file left behind');

    await rm(filler);
    const again = await sendOne(port, 'x'.repeat(400_000).replace(/(.{76})/g, '$1\r\n'));
    assert.equal(again.code, 250, again.text);
    const later = await pickup.scanOnce();
    assert.equal(later.queued.length, 1);
    assert.equal(await assertNoDamagedFile(config.mailrootPath), 3);
    // A restart's recovery finds the spool whole.
    await listener.stop({ graceful: false });
    await spool.close();
    const reopened = await openSpool(config, { clock: new ManualClock(), logger: silentLogger() });
    assert.equal((await reopened.list()).length, 3);
    await reopened.close();
  } finally {
    await listener.stop({ graceful: false }).catch(() => {});
    await spool.close().catch(() => {});
    fs.unmount();
  }
});

test('a read-only mailroot is refused at start, naming the folder and the reason', async (t) => {
  const fs = mountTmpfs('1m');
  if ('skip' in fs) return t.skip(fs.skip);
  const root = path.join(fs.dir, 'mailroot');
  try {
    const first = await openSpool({ mailrootPath: root }, { clock: new ManualClock(), logger: silentLogger() });
    await first.close();
    execFileSync('mount', ['-o', 'remount,ro', fs.dir]);
    await assert.rejects(openSpool({ mailrootPath: root }, { clock: new ManualClock(), logger: silentLogger() }), (e: Error) => {
      assert.match(e.message, new RegExp(`the mailroot ${root} is not writable \\(EROFS\\)`));
      return true;
    });
  } finally {
    fs.unmount();
  }
});

test('a mailroot whose parent folder is missing is refused at start (not created silently); a missing mailroot itself is created', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'smarthost-mailroot-'));
  try {
    const lost = path.join(dir, 'not-mounted', 'mailroot');
    await assert.rejects(openSpool({ mailrootPath: lost }, { clock: new ManualClock(), logger: silentLogger() }), new RegExp(`the mailroot ${lost} cannot be created: its parent folder does not exist`));
    const fresh = await openSpool({ mailrootPath: path.join(dir, 'mailroot') }, { clock: new ManualClock(), logger: silentLogger() });
    await fresh.close();
    assert.ok((await readdir(path.join(dir, 'mailroot'))).includes('incoming'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('recovery moves damaged queue files aside with their reason and never stops on one it cannot read', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'smarthost-damaged-'));
  const root = path.join(dir, 'mailroot');
  try {
    const first = await openSpool({ mailrootPath: root }, { clock: new ManualClock(), logger: silentLogger() });
    const good = await first.enqueue({ mailFrom: 'a@example.org', recipients: ['b@example.com'], client: { address: '127.0.0.1', source: 'smtp' }, receivedAt: new Date().toISOString(), size: 0 }, Buffer.from('Subject: good\r\n\r\nok\r\n'));
    await first.close();
    const [empty, garbage, dirLike] = [newQueueId(), newQueueId(), newQueueId()];
    await writeFile(path.join(root, 'deferred', `${empty}.eml`), '');
    await writeFile(path.join(root, 'active', `${garbage}.eml`), Buffer.from([0, 1, 2, 0xff, 0xfe, 0x0a]).toString('latin1').repeat(100), 'latin1');
    await mkdir(path.join(root, 'hold', `${dirLike}.eml`)); // not even a file
    await writeFile(path.join(root, 'deferred', 'not-a-queue-file.txt'), 'stray');
    const spool = await openSpool({ mailrootPath: root }, { clock: new ManualClock(), logger: silentLogger() });
    const ids = (await spool.list()).map((x) => x.record.id);
    assert.deepEqual(ids, [good], 'the good message is still queued');
    await spool.close();
    const bad = (await readdir(path.join(root, 'badmail'))).sort();
    for (const id of [empty, garbage]) {
      assert.ok(bad.includes(`${id}.BAD`) && bad.includes(`${id}.BDR`), `${id} moved aside: ${bad.join(' ')}`);
      assert.match(await readFile(path.join(root, 'badmail', `${id}.BDR`), 'utf8'), /is damaged \(/);
    }
    assert.ok(bad.includes(`${dirLike}.damaged`), 'what cannot be copied is moved aside as found');
    assert.match(await readFile(path.join(root, 'badmail', `${dirLike}.BDR`), 'utf8'), /could not be copied \(EISDIR.*moved as found to badmail\//);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
