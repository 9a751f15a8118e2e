// "Committed but not yet answered" (src/queue/acknowledge.ts): a message whose client never got 250
// because the relay was killed in between is set aside after the restart (same kernel boot), kept
// otherwise; acknowledged and pickup messages are always delivered. The crash is a real SIGKILL of
// a child process holding the spool.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { closeSync, fstatSync, openSync, writeSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { PassThrough } from 'node:stream';
import os from 'node:os';
import path from 'node:path';
import { openSpool } from '../../src/queue/spool.ts';
import { SpareFiles, writeOpenNow } from '../../src/queue/durable.ts';
import { UNANSWERED_BIT, currentBootId } from '../../src/queue/acknowledge.ts';
import { ManualClock } from '../../src/core/clock.ts';
import { createLogger, silentLogger } from '../../src/core/logger.ts';
import type { QueueEvent } from '../../src/core/types.ts';

const NODE = process.execPath;
const BOOT_A = '0f3c9a52-5b1e-4c57-9a53-2f0e3c4d5e6f';
const BOOT_B = '7d1e2f3a-4b5c-4d6e-8f90-a1b2c3d4e5f6';

async function tmpDir(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'sh-ack-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const marked = async (file: string) => ((await stat(file)).mode & UNANSWERED_BIT) !== 0;


test('killed between commit and acknowledge: set aside when the kernel is the same, kept after a reboot; acknowledged and pickup messages kept', { timeout: 60_000 }, async (t) => {
  const dir = await tmpDir(t);
  const root = path.join(dir, 'mailroot');
  const bootFile = path.join(dir, 'boot_id');
  await writeFile(bootFile, `${BOOT_A}\n`);
  const child = spawn(NODE, [path.join(import.meta.dirname, 'ack-child.ts'), root, bootFile], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); });
  const out = await new Promise<string>((resolve, reject) => {
    let buf = '';
    child.once('exit', (code) => reject(new Error(`child exited (${code}) before DONE`)));
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      if (buf.includes('DONE')) resolve(buf);
    });
  });
  child.removeAllListeners('exit');
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  const ids = (kind: string) => [...out.matchAll(new RegExp(`^${kind} (\\S+)$`, 'gm'))].map((m) => m[1]);
  const [acked, unacked, pickup] = [ids('ACKED'), ids('UNACKED'), ids('PICKUP')];
  assert.deepEqual([acked.length, unacked.length, pickup.length], [4, 3, 3]);
  const incoming = (r: string, id: string) => path.join(r, 'incoming', `${id}.eml`);
  // the mark as the kill left it: set only on the client messages not acknowledged
  for (const id of unacked) assert.ok(await marked(incoming(root, id)), `${id} carries the "no 250 yet" mark`);
  for (const id of [...acked, ...pickup]) assert.ok(!(await marked(incoming(root, id))), `${id} carries no mark`);
  // the same spool after a reboot (another boot id), and with the setting off
  const rebooted = path.join(dir, 'rebooted');
  const keepAll = path.join(dir, 'keep');
  await cp(root, rebooted, { recursive: true });
  await cp(root, keepAll, { recursive: true });

  // 1. same kernel: the unacknowledged ones go to badmail/ with their reason, logged and reported
  const events: QueueEvent[] = [];
  const lines: string[] = [];
  const logSink = new PassThrough();
  logSink.on('data', (d: Buffer) => lines.push(...d.toString().split('\n').filter(Boolean)));
  const spool = await openSpool({ mailrootPath: root }, { clock: new ManualClock(), logger: createLogger({ format: 'json', destination: logSink }), bootIdSource: bootFile, events: (e) => events.push(e) });
  const queued = (await spool.list()).map((e) => e.record.id).sort();
  assert.deepEqual(queued, [...acked, ...pickup].sort(), 'acknowledged and pickup messages stay queued');
  const badmail = (await readdir(path.join(root, 'badmail'))).sort();
  assert.deepEqual(badmail, unacked.flatMap((id) => [`${id}.BAD`, `${id}.BDR`]).sort());
  for (const id of unacked) {
    const bdr = await readFile(path.join(root, 'badmail', `${id}.BDR`), 'utf8');
    assert.match(bdr, /^Not acknowledged: the relay stopped after storing message .* before its 250 reached the client .* sends it again/);
    const bad = await readFile(path.join(root, 'badmail', `${id}.BAD`), 'utf8');
    const i = Number(/Subject: m(\d+)/.exec(bad)?.[1]);
    assert.ok(bad.startsWith(`X-Sender: printer${i}@example.com\r\nX-Receiver: a${i}@example.org\r\nSubject: m${i}\r\n`), 'resubmittable through pickup/, message whole');
    assert.ok(events.some((e) => e.type === 'state' && e.id === id && e.state === 'badmail' && /not acknowledged/.test(e.reason ?? '')), `history learns ${id}`);
    assert.ok(lines.some((l) => { const r = JSON.parse(l); return r.level === 40 && r.id === id && r.from === `printer${i}@example.com` && r.to?.[0] === `a${i}@example.org`; }), `a warning names ${id}, its sender and recipients`);
  }
  // an acknowledged one is delivered normally
  const claimed = await spool.claim(acked[0]);
  assert.equal(claimed?.id, acked[0]);
  await spool.settle(claimed!, 'done');
  await spool.close();

  // 2. another boot: every file kept, the marks cleared, so a later crash in this boot keeps them too
  await writeFile(bootFile, `${BOOT_B}\n`);
  const after = await openSpool({ mailrootPath: rebooted }, { clock: new ManualClock(), logger: silentLogger(), bootIdSource: bootFile });
  assert.deepEqual((await after.list()).map((e) => e.record.id).sort(), [...acked, ...unacked, ...pickup].sort(), 'nothing set aside after a reboot');
  assert.deepEqual(await readdir(path.join(rebooted, 'badmail')), []);
  for (const id of unacked) assert.ok(!(await marked(incoming(rebooted, id))), `${id}: mark cleared`);
  await after.close();
  const again = await openSpool({ mailrootPath: rebooted }, { clock: new ManualClock(), logger: silentLogger(), bootIdSource: bootFile });
  assert.equal((await again.list()).length, 10, 'a second start in the same boot keeps them');
  assert.deepEqual(await readdir(path.join(rebooted, 'badmail')), []);
  await again.close();

  // 3. queue.keepUnacknowledged: same kernel, every file kept
  await writeFile(bootFile, `${BOOT_A}\n`);
  const kept = await openSpool({ mailrootPath: keepAll, queue: { keepUnacknowledged: true } }, { clock: new ManualClock(), logger: silentLogger(), bootIdSource: bootFile });
  assert.equal((await kept.list()).length, 10);
  assert.deepEqual(await readdir(path.join(keepAll, 'badmail')), []);
  await kept.close();
});

test('an unanswered message is not handed to delivery before its acknowledgement; no boot id, no mark', { timeout: 30_000 }, async (t) => {
  const dir = await tmpDir(t);
  const bootFile = path.join(dir, 'boot_id');
  await writeFile(bootFile, `${BOOT_A}\n`);
  const clock = new ManualClock();
  const spool = await openSpool({ mailrootPath: path.join(dir, 'm') }, { clock, logger: silentLogger(), bootIdSource: bootFile });
  const kicks: string[] = [];
  spool.onEnqueued((id) => kicks.push(id));
  const env = { mailFrom: 'p@example.com', recipients: ['a@example.org'], client: { address: '127.0.0.1', source: 'smtp' as const }, receivedAt: new Date().toISOString(), size: 0 };
  const id = await spool.enqueue(env, Buffer.from('Subject: x\r\n\r\nx\r\n'), undefined, { acknowledgeLater: true });
  assert.deepEqual(spool.due(clock.now(), 10), [], 'not due before its 250');
  assert.equal(await spool.claim(id), undefined, 'not claimable before its 250');
  await assert.rejects(spool.hold(id), /being worked on/);
  kicks.length = 0;
  spool.acknowledge(id);
  assert.deepEqual(kicks, [id], 'the delivery manager is woken');
  assert.ok(!(await marked(path.join(dir, 'm', 'incoming', `${id}.eml`))));
  assert.deepEqual(spool.due(clock.now(), 10).map((r) => r.id), [id]);
  assert.equal((await spool.claim(id))?.id, id);
  await spool.close();

  // not Linux (no boot id): written as before, due at once
  const plain = await openSpool({ mailrootPath: path.join(dir, 'n') }, { clock, logger: silentLogger(), bootIdSource: path.join(dir, 'none') });
  const other = await plain.enqueue(env, Buffer.from('Subject: y\r\n\r\ny\r\n'), undefined, { acknowledgeLater: true });
  assert.ok(!(await marked(path.join(dir, 'n', 'incoming', `${other}.eml`))));
  assert.deepEqual(plain.due(clock.now(), 10).map((r) => r.id), [other]);
  await plain.close();
});

test('a reused spare file takes the mode asked for, not its previous message\'s mark', async (t) => {
  const dir = await tmpDir(t);
  const spares = new SpareFiles(dir, 0, 4);
  const file = path.join(dir, 'given-back');
  const fd = openSync(file, 'wx', 0o740);
  writeSync(fd, Buffer.from('an older, longer message'));
  assert.ok(spares.giveBack({ fd, file, size: 24, mode: 0o740 }));
  const w = writeOpenNow(path.join(dir, 'new'), Buffer.from('short'), spares);
  assert.equal(w.file, file, 'the spare was reused');
  assert.equal(fstatSync(w.fd).mode & 0o777, 0o640);
  assert.equal(fstatSync(w.fd).size, 5);
  closeSync(w.fd);
  await spares.close();
});

test('the boot id is asked only on Linux: a Windows build (under wine it can read the host /proc) marks nothing', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'sh-bootid-'));
  try {
    const file = path.join(dir, 'boot_id');
    await writeFile(file, '0b4c6f1e-8d2a-4f7e-9a51-3c2d1e0f9a8b\n');
    assert.equal(await currentBootId(file, 'linux'), '0b4c6f1e-8d2a-4f7e-9a51-3c2d1e0f9a8b');
    assert.equal(await currentBootId(file, 'win32'), undefined);
    assert.equal(await currentBootId(file, 'darwin'), undefined);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
