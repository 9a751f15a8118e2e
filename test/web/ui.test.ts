// The console's page in real headless Chromium (Debian's chromium via playwright-core) over the
// console's fake services and a real SQLite history: login, every page renders without a script
// error, a live event re-renders the open page without a reload, the phone layout hides the menu,
// and the page's own requests carry the CSRF token (a forged one without it is refused).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { chromium, type Browser, type Page } from 'playwright-core';
import { systemClock } from '../../src/core/clock.ts';
import { silentLogger } from '../../src/core/logger.ts';
import { hashPassword } from '../../src/core/password.ts';
import { openHistory, type HistoryStore } from '../../src/history/index.ts';
import { buildWeb } from '../../src/web/app.ts';
import { fakeServices, type Fakes } from './fakes.ts';
import { accepted, attempt, state } from '../history/events.ts';

const CHROMIUM = '/usr/bin/chromium';
const skip = existsSync(CHROMIUM) ? undefined : 'Debian chromium is not installed (/usr/bin/chromium)';
const tmp = mkdtempSync(path.join(os.tmpdir(), 'smarthost-ui-'));
let history: HistoryStore;
let app: FastifyInstance;
let f: Fakes;
let browser: Browser;
let base: string;
const pageErrors: string[] = [];

before(async () => {
  if (skip) return;
  history = openHistory({ history: { store: 'sqlite', retention: 30 * 86_400_000 }, mailrootPath: tmp }, { logger: silentLogger(), clock: systemClock, purgeEveryMs: 0 });
  const t = Date.now() - 3_600_000;
  history.record(accepted('m1', t, 'scanner@office.example', ['alice@example.com'], { subject: 'Scan' }));
  history.record(attempt('m1', t + 100, [{ recipient: 'alice@example.com', action: 'delayed', status: '4.4.1', diagnostic: '421 4.4.1 Connection timed out', reason: 'the upstream did not answer; we will try again' }]));
  history.record(state('m1', t + 101, 'deferred', 'the upstream did not answer; we will try again'));
  await history.flush();
  f = fakeServices(history);
  app = await buildWeb(f.services, { web: { enabled: true, address: '127.0.0.1', port: 0, adminUser: 'admin', secureCookies: false, adminPassword: await hashPassword('pw', { N: 1024 }) } });
  await app.listen({ host: '127.0.0.1', port: 0 });
  base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}/`;
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'] });
});

after(async () => {
  await browser?.close();
  await app?.close();
  await history?.close();
  rmSync(tmp, { recursive: true, force: true });
});

async function loggedIn(viewport = { width: 1200, height: 900 }): Promise<Page> {
  const page = await browser.newPage({ viewport });
  page.on('pageerror', (e) => pageErrors.push(e.message));
  await page.goto(base);
  await page.fill('#login-user', 'admin');
  await page.fill('#login-password', 'pw');
  await page.click('#login-form button[type=submit]');
  await page.waitForSelector('.cards');
  return page;
}

test('every page renders in Chromium without a script error', { skip }, async () => {
  const page = await loggedIn();
  for (const p of ['dashboard', 'queue', 'history', 'badmail', 'send', 'diagnostics', 'config', 'message/m1']) {
    await page.goto(`${base}#${p}`);
    await page.waitForSelector('#page h1');
    await page.waitForLoadState('networkidle');
    assert.equal(await page.locator('#page .error').count(), 0, `${p}: ${await page.locator('#page .error').allTextContents()}`);
  }
  assert.match((await page.textContent('#timeline')) ?? '', /we will try again/);
  assert.deepEqual(pageErrors, []);
  await page.close();
});

test('a live event re-renders the open page without a reload', { skip }, async () => {
  const page = await loggedIn();
  await page.goto(`${base}#message/m1`);
  await page.waitForSelector('#page .state[data-state="deferred"]');
  await page.waitForSelector('#live.on');
  await page.evaluate(() => ((window as unknown as { marker: number }).marker = 42));
  const t = Date.now();
  history.record(attempt('m1', t, [{ recipient: 'alice@example.com', action: 'delivered', status: '2.0.0', diagnostic: '250 2.0.0 OK' }]));
  history.record(state('m1', t + 1, 'delivered'));
  await history.flush();
  f.emit({ type: 'state', id: 'm1', state: 'delivered', at: new Date(t + 1).toISOString() });
  await page.waitForSelector('#page .state[data-state="delivered"]', { timeout: 5000 });
  assert.equal(await page.evaluate(() => (window as unknown as { marker: number }).marker), 42, 'same page, not reloaded');
  await page.close();
});

test('buttons send the CSRF token; a request without it is refused', { skip }, async () => {
  const page = await loggedIn();
  await page.goto(`${base}#queue`);
  f.calls.length = 0;
  await page.click('#queue-flush');
  await page.waitForSelector('#toast div:has-text("flush: done")');
  assert.deepEqual(f.calls, ['flush']);
  const status = await page.evaluate(async () => (await fetch('/api/queue/flush', { method: 'POST' })).status);
  assert.equal(status, 403);
  assert.deepEqual(f.calls, ['flush']);
  await page.close();
});

test('on a phone the menu folds away and tables become cards', { skip }, async () => {
  const page = await loggedIn({ width: 390, height: 844 });
  assert.equal(await page.isVisible('#nav'), false);
  await page.click('#menu-toggle');
  assert.equal(await page.isVisible('#nav'), true);
  await page.click('nav a[data-page="queue"]');
  await page.waitForSelector('#queue-body tbody tr');
  assert.equal(await page.isVisible('#nav'), false);
  assert.equal(await page.isVisible('thead'), false);
  await page.close();
});
