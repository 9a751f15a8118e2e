import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, readdir } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { openSpool } from '../../src/queue/spool.ts';
import { createDeliveryManager } from '../../src/outbound/manager.ts';
import { createSmtpTransport } from '../../src/transports/smtp.ts';
import { parseConfigText } from '../../src/config/load.ts';
import { systemClock } from '../../src/core/clock.ts';
import { silentLogger } from '../../src/core/logger.ts';
import { startUpstream } from '../transports/upstream-server.ts';

test('killed (SIGKILL) while delivering: after restart the message is delivered again, marked possibleDuplicate', { timeout: 40_000 }, async (t) => {
  const root = await mkdtemp(path.join(os.tmpdir(), 'sh-crash-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  const up = await startUpstream({ hangAfterDot: 1 });
  t.after(() => up.close());
  const child = spawn(process.execPath, [path.join(import.meta.dirname, 'relay-child.ts'), root, String(up.port)], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  let out = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  // wait until the upstream holds the whole message and the relay waits for its reply
  for (let i = 0; i < 200 && !(out.includes('QUEUED') && up.received.length === 1); i++) await new Promise((r) => setTimeout(r, 50));
  const id = /QUEUED (\S+)/.exec(out)?.[1];
  assert.ok(id, 'the child queued a message');
  assert.equal(up.received.length, 1);
  assert.deepEqual(await readdir(path.join(root, 'active')), [`${id}.eml`]);
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));

  const config = { ...parseConfigText(`hostname: relay.test\nupstreams:\n  - { name: main, url: "smtp://127.0.0.1:${up.port}" }\n`, path.join(root, 'smarthost.yaml')), mailrootPath: root };
  const logger = silentLogger();
  const spool = await openSpool(config, { clock: systemClock, logger });
  const [entry] = await spool.list();
  assert.equal(entry.record.id, id);
  assert.equal(entry.state, 'incoming');
  assert.equal(entry.record.possibleDuplicate, true);
  const manager = createDeliveryManager(config, { spool, transports: [createSmtpTransport(config.upstreams[0], { logger, hostname: 'relay.test', pool: false })], logger, clock: systemClock });
  await manager.runOnce();
  await manager.stop();
  assert.equal(up.received.length, 2, 'delivered again: at least once, never zero');
  assert.match(up.received[1].data.toString(), /Subject: crash test/);
  assert.deepEqual(await spool.list(), []);
});
