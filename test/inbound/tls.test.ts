import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { ManualClock } from '../../src/core/clock.ts';
import { loadCertificate } from '../../src/inbound/tls.ts';
import { makeConfig } from './setup.ts';

function recordingLogger(): { logger: pino.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({ write(c, _e, done) { for (const l of c.toString().split('\n')) if (l.trim()) lines.push(JSON.parse(l)); done(); } });
  return { logger: pino({ level: 'info' }, sink), lines };
}

test('a self-signed certificate is generated on first start under mailroot/tls/ and reused on restart', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'smarthost-tls-'));
  try {
    const config = makeConfig('', dir);
    const clock = new ManualClock(Date.now());
    const { logger, lines } = recordingLogger();
    const first = await loadCertificate(config, logger, clock);
    assert.ok(first.selfSigned);
    assert.equal(first.source, path.join(dir, 'mailroot', 'tls', 'selfsigned.crt'));
    assert.match(new X509Certificate(first.cert).subject, /CN=relay\.test/);
    const second = await loadCertificate(config, logger, clock);
    assert.equal(second.cert, first.cert, 'reused, not regenerated');
    assert.equal(readFileSync(first.source, 'utf8'), first.cert);
    assert.ok(!lines.some((l) => l.level === 40), 'no expiry warning for a fresh certificate');
    // Near expiry: a warning. After expiry: a new certificate.
    clock.advance((first.notAfter.getTime() - clock.now()) - 5 * 86_400_000);
    await loadCertificate(config, logger, clock);
    assert.ok(lines.some((l) => l.level === 40 && /expires in 5 day/.test(String(l.msg))));
    clock.advance(10 * 86_400_000);
    const renewed = await loadCertificate(config, logger, clock);
    assert.notEqual(renewed.cert, first.cert);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('configured certificate files are used; a missing file is named in the error', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'smarthost-tls-'));
  try {
    const gen = await loadCertificate(makeConfig('', dir), pino({ level: 'silent' }), new ManualClock(Date.now()));
    const config = makeConfig(`tls:\n  cert: mailroot/tls/selfsigned.crt\n  key: mailroot/tls/selfsigned.key\n`, dir);
    const loaded = await loadCertificate(config, pino({ level: 'silent' }), new ManualClock(Date.now()));
    assert.equal(loaded.cert, gen.cert);
    assert.equal(loaded.selfSigned, false);
    const missing = makeConfig('tls:\n  cert: nope.crt\n  key: nope.key\n', dir);
    await assert.rejects(loadCertificate(missing, pino({ level: 'silent' }), new ManualClock(Date.now())), /nope\.crt: the TLS certificate could not be read/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
