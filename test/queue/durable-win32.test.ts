// Windows has no directory fsync (Node answers EPERM on a folder handle there): the directory
// syncer skips it on win32 instead of failing every 250, and still syncs everywhere else.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DirectorySyncer } from '../../src/queue/durable.ts';

test('win32: no directory fsync is issued, and a folder that cannot be opened does not fail the commit', async () => {
  const win = new DirectorySyncer('win32');
  await win.sync(path.join(tmpdir(), 'no-such-folder-for-sure'));
  assert.equal(win.syncCount, 0);
});

test('linux: the folder is fsynced, and a folder that cannot be opened fails the commit', async () => {
  const linux = new DirectorySyncer('linux');
  const dir = mkdtempSync(path.join(tmpdir(), 'sh-dirsync-'));
  await linux.sync(dir);
  assert.equal(linux.syncCount, 1);
  rmSync(dir, { recursive: true });
  await assert.rejects(linux.sync(path.join(tmpdir(), 'no-such-folder-for-sure')), /ENOENT/);
});
