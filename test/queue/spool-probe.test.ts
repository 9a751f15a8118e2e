// The spool's health probe (behind /healthz, the console and `smarthost status`): probes asked at
// the same moment (a load balancer checks every 300 ms while an admin looks) must not trip over each
// other and call a healthy spool down; a spool that cannot take a file is still reported.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, rename, writeFile, readdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { openSpool } from '../../src/queue/spool.ts';
import { ManualClock } from '../../src/core/clock.ts';
import { silentLogger } from '../../src/core/logger.ts';

test('probes asked at once all pass on a healthy spool and leave nothing behind; a spool that cannot commit fails them', async () => {
  const root = await mkdtemp(path.join(os.tmpdir(), 'sh-probe-'));
  const spool = await openSpool({ mailrootPath: root }, { clock: new ManualClock(), logger: silentLogger() });
  try {
    for (let round = 0; round < 20; round++) {
      const results = await Promise.allSettled(Array.from({ length: 8 }, () => spool.probe()));
      assert.deepEqual(results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason)), [], `round ${round}`);
    }
    assert.deepEqual((await readdir(path.join(root, 'incoming'))).filter((f) => f.startsWith('.health-probe')), []);
    assert.deepEqual((await readdir(path.join(root, 'tmp'))).filter((f) => f.startsWith('.health-probe')), []);

    // incoming/ replaced by a file: an accept could not commit, so the probe must fail (every caller)
    const incoming = path.join(root, 'incoming');
    await rename(incoming, `${incoming}.away`);
    await writeFile(incoming, 'not a folder');
    const failed = await Promise.allSettled([spool.probe(), spool.probe()]);
    assert.deepEqual(failed.map((r) => r.status), ['rejected', 'rejected']);
    await rm(incoming);
    await rename(`${incoming}.away`, incoming);
    await spool.probe();
  } finally {
    await spool.close();
    await rm(root, { recursive: true, force: true });
  }
});
