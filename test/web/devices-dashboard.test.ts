// The dashboard data says which listener accepts old TLS and which clients STARTTLS is withheld from.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { systemClock } from '../../src/core/clock.ts';
import { silentLogger } from '../../src/core/logger.ts';
import { openHistory, type HistoryStore } from '../../src/history/index.ts';
import { buildWeb } from '../../src/web/app.ts';
import { fakeServices } from './fakes.ts';

let history: HistoryStore;
const tmp = mkdtempSync(path.join(os.tmpdir(), 'smarthost-web-devices-'));
before(() => {
  history = openHistory({ history: { store: 'sqlite', retention: 86_400_000 }, mailrootPath: tmp }, { logger: silentLogger(), clock: systemClock, purgeEveryMs: 0 });
});
after(async () => {
  await history.close();
  rmSync(tmp, { recursive: true, force: true });
});

const webConfig = { web: { enabled: true, address: '127.0.0.1', port: 0, adminUser: 'admin', secureCookies: false, adminPassword: undefined } };

test('/api/dashboard carries the old-TLS listeners and the clients STARTTLS is withheld from; nothing when there are none', async () => {
  const withheld = { client: '192.168.1.60', listener: '0.0.0.0:25', at: new Date().toISOString(), until: new Date(Date.now() + 86_400_000).toISOString(), reason: 'unsupported protocol', offered: { versions: ['TLS 1.0'], ciphers: ['AES128-SHA'] }, advice: 'set tlsProfile: legacy (LAN only) on this listener' };
  const f = fakeServices(history, { devices: { status: () => ({ oldTls: [{ listener: '0.0.0.0:25', note: 'listener 0.0.0.0:25 accepts TLS 1.0 and 1.1 …' }], starttlsWithheld: [withheld] }) } });
  const app = await buildWeb(f.services, webConfig as never);
  try {
    const r = await app.inject({ url: '/api/dashboard' });
    assert.equal(r.statusCode, 200, r.body);
    assert.deepEqual(r.json().devices.starttlsWithheld, [withheld]);
    assert.equal(r.json().devices.oldTls[0].listener, '0.0.0.0:25');
  } finally {
    await app.close();
  }
  const plain = await buildWeb(fakeServices(history).services, webConfig as never);
  try {
    assert.equal((await plain.inject({ url: '/api/dashboard' })).json().devices, undefined);
  } finally {
    await plain.close();
  }
});
