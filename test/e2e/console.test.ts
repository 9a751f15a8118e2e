// The console end to end, in real headless Chromium (Debian's chromium through playwright-core)
// against a running relay (`smarthost serve`) whose upstream is a real SMTP server on loopback:
// log in; send a test mail and watch it become delivered without reloading; stop the upstream,
// see the message deferred with the reason in words, bring it back, retry, see it delivered; a
// permanent failure shows in badmail with its reason and is retried after the fix; a search finds
// one message by recipient among 10,000; an action without the CSRF token is refused; /metrics
// counts what was sent. Screenshots of each page go to test-results/screenshots/.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { SMTPServer } from 'smtp-server';
import { chromium, type Browser, type Page } from 'playwright-core';
import { hashPassword } from '../../src/core/password.ts';
import { systemClock } from '../../src/core/clock.ts';
import { silentLogger } from '../../src/core/logger.ts';
import { openHistory } from '../../src/history/index.ts';
import { freePort, startRelay, ROOT, type RelayProcess } from '../helpers/relay.ts';

const CHROMIUM = '/usr/bin/chromium';
const SHOTS = path.join(ROOT, 'test-results', 'screenshots');
const PASSWORD = 'console e2e password';
const skip = existsSync(CHROMIUM) ? undefined : 'Debian chromium is not installed (/usr/bin/chromium)';

/** A loopback SMTP upstream that can be stopped and started on the same port, and told to refuse. */
function upstreamOn(port: number) {
  const received: { to: string[]; raw: string }[] = [];
  let refuse: RegExp | undefined;
  let server: SMTPServer | undefined;
  return {
    received,
    refuse(re: RegExp | undefined) {
      refuse = re;
    },
    async start() {
      server = new SMTPServer({
        authOptional: true, disabledCommands: ['STARTTLS', 'AUTH'], logger: false, disableReverseLookup: true, closeTimeout: 200,
        onRcptTo(address, _s, cb) {
          if (refuse?.test(address.address)) return cb(Object.assign(new Error('5.7.1 Client does not have permissions to send as this sender'), { responseCode: 550 }));
          cb();
        },
        onData(stream, session, cb) {
          const chunks: Buffer[] = [];
          stream.on('data', (c: Buffer) => chunks.push(c));
          stream.on('end', () => {
            received.push({ to: session.envelope.rcptTo.map((r) => r.address), raw: Buffer.concat(chunks).toString('utf8') });
            cb(null, '2.0.0 Ok: queued');
          });
        },
      });
      server.on('error', () => {}); // connection resets from the relay are not the test's business
      await new Promise<void>((resolve, reject) => {
        server!.once('error', reject);
        server!.listen(port, '127.0.0.1', () => resolve());
      });
    },
    async stop() {
      const s = server;
      server = undefined;
      if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
    },
  };
}

let relay: RelayProcess;
let browser: Browser;
let page: Page;
let base: string;
let upstream: ReturnType<typeof upstreamOn>;

before(async () => {
  if (skip) return;
  rmSync(SHOTS, { recursive: true, force: true });
  mkdirSync(SHOTS, { recursive: true });
  const upPort = await freePort();
  upstream = upstreamOn(upPort);
  await upstream.start();
  const webPort = await freePort();
  const hash = await hashPassword(PASSWORD, { N: 1024 });
  relay = await startRelay([
    'upstreams:',
    '  - name: loopback',
    `    url: smtp://127.0.0.1:${upPort}`,
    'delivery:',
    '  scanInterval: 500ms',
    'ndr:',
    '  to: off',
    'pickup:',
    '  interval: 500ms',
    '  settle: 300ms',
    'web:',
    '  address: 127.0.0.1',
    `  port: ${webPort}`,
    `  adminPassword: "${hash}"`,
  ].join('\n'), { waitFor: [webPort] });
  base = `http://127.0.0.1:${webPort}/`;
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'] });
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
});

after(async () => {
  await browser?.close();
  await relay?.stop();
  await upstream?.stop();
  if (relay) rmSync(relay.dir, { recursive: true, force: true });
});

const shot = (name: string, p: Page = page) => p.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });

async function sendTest(to: string, subject: string): Promise<string> {
  await page.goto(`${base}#send`);
  await page.fill('#send-from', 'scanner@office.example');
  await page.fill('#send-to', to);
  await page.fill('#send-subject', subject);
  await page.click('#send-submit');
  const id = (await page.textContent('#send-queued', { timeout: 10_000 }))!;
  assert.match(id, /\S/);
  return id;
}

test('console in Chromium against a running relay', { skip, timeout: 120_000 }, async (t) => {
  await t.test('log in', async () => {
    await page.goto(base);
    await page.waitForSelector('#login-form');
    await shot('login');
    await page.fill('#login-user', 'admin');
    await page.fill('#login-password', 'wrong');
    await page.click('#login-form button[type=submit]');
    await page.waitForSelector('#login-error:has-text("wrong user name or password")');
    await page.fill('#login-password', PASSWORD);
    await page.click('#login-form button[type=submit]');
    await page.waitForSelector('.cards');
    await page.waitForSelector('#live.on');
    await shot('dashboard');
  });

  let firstId = '';
  await t.test('a test mail appears delivered without reloading', async () => {
    firstId = await sendTest('alice@example.com', 'Console e2e one');
    await shot('send');
    await page.click('#send-queued');
    // The message page re-renders on live events; no reload is made below.
    await page.waitForSelector('#page .state[data-state="delivered"]', { timeout: 20_000 });
    await page.waitForSelector('#timeline td:has-text("250")');
    await shot('message-delivered');
    assert.ok(upstream.received.some((m) => m.raw.includes('Console e2e one')));
  });

  await t.test('upstream down: deferred with the reason in words; back up, retry, delivered', async () => {
    await upstream.stop();
    const id = await sendTest('bob@example.com', 'Console e2e two');
    await page.goto(`${base}#queue`);
    const row = page.locator(`tr[data-id="${id}"]`);
    await row.locator('.state[data-state="deferred"]').waitFor({ timeout: 30_000 });
    await row.locator('.meaning').waitFor();
    const why = (await row.locator('.why').textContent()) ?? '';
    assert.match(why, /ECONNREFUSED/, `the upstream's reply: "${why}"`);
    assert.match((await row.locator('.meaning').textContent()) ?? '', /[a-z]+ [a-z]+ [a-z]+ [a-z]+/i, `and what it means in words: "${why}"`);
    await shot('queue-deferred');
    await upstream.start();
    await row.locator('button[data-action="retry"]').click();
    await row.waitFor({ state: 'detached', timeout: 30_000 });
    await page.goto(`${base}#message/${encodeURIComponent(id)}`);
    await page.waitForSelector('#page .state[data-state="delivered"]', { timeout: 20_000 });
    assert.ok(upstream.received.some((m) => m.raw.includes('Console e2e two')));
  });

  await t.test('a permanent failure shows in badmail with its reason, and is retried after the fix', async () => {
    upstream.refuse(/^carol@/);
    await sendTest('carol@example.com', 'Console e2e three');
    await page.goto(`${base}#badmail`);
    const entry = page.locator('#page tbody tr').filter({ hasText: '5.7.1' }).first();
    await entry.waitFor({ timeout: 20_000 }).catch(async (err: Error) => {
      await shot('badmail-timeout');
      const q = await page.evaluate(async () => (await fetch('/api/queue')).text());
      throw new Error(`${err.message}\nqueue: ${q}\nrelay log (tail): ${relay.output().slice(-3000)}`);
    });
    await entry.locator('button[data-action="reason"]').click();
    await page.waitForSelector('#badmail-detail pre');
    assert.match((await page.textContent('#badmail-detail pre')) ?? '', /carol@example\.com[\s\S]*550/);
    await shot('badmail');
    // The dashboard's last errors say it too, with what the reply means.
    await page.goto(`${base}#dashboard`);
    const err = page.locator('#page tr').filter({ hasText: '5.7.1' }).first();
    await err.waitFor({ timeout: 10_000 });
    assert.match((await err.locator('.reason').textContent()) ?? '', /send as/i);
    await shot('dashboard-errors');
    await page.goto(`${base}#badmail`);
    await entry.waitFor({ timeout: 10_000 });
    upstream.refuse(undefined);
    const before = upstream.received.length;
    await entry.locator('button[data-action="retry"]').click();
    for (let i = 0; i < 100 && !upstream.received.slice(before).some((m) => m.raw.includes('Console e2e three')); i++) await page.waitForTimeout(200);
    assert.ok(upstream.received.some((m) => m.to.includes('carol@example.com') && m.raw.includes('Console e2e three')), 'delivered after the retry');
  });

  await t.test('search finds one message by recipient among 10,000', async () => {
    // Written through the history API into the relay's own store (the same SQLite file).
    const h = openHistory({ history: { store: 'sqlite', retention: 90 * 86_400_000 }, mailrootPath: relay.mailroot }, { logger: silentLogger(), clock: systemClock, purgeEveryMs: 0 });
    const t0 = Date.now() - 86_400_000;
    for (let i = 0; i < 10_000; i++) {
      const at = new Date(t0 + i * 1000).toISOString();
      h.record({ type: 'accepted', id: `bulk${String(i).padStart(5, '0')}`, at, envelope: { mailFrom: `device${i % 40}@office.example`, recipients: [`person${i}@example.org`], receivedAt: at, size: 2000, subject: `Bulk ${i}`, client: { address: '192.0.2.9', source: 'smtp' } } });
    }
    await h.flush();
    assert.equal(h.health().written, 10_000);
    await h.close();
    await page.goto(`${base}#history`);
    await page.fill('#h-recipient', 'person4242@example.org');
    await page.click('#history-search');
    await page.waitForSelector('#history-body tbody tr:has-text("Bulk 4242")');
    assert.equal(await page.locator('#history-body tbody tr').count(), 1);
    await shot('history-search');
    await page.locator('#history-body tbody tr').first().click();
    await page.waitForSelector('#timeline');
    await shot('message-timeline');
  });

  await t.test('an action without the CSRF token is refused', async () => {
    const status = await page.evaluate(async () => (await fetch('/api/queue/flush', { method: 'POST' })).status);
    assert.equal(status, 403);
    const withToken = await page.evaluate(async () => {
      const s = await (await fetch('/api/session')).json();
      return (await fetch('/api/queue/flush', { method: 'POST', headers: { 'x-csrf-token': s.csrf } })).status;
    });
    assert.equal(withToken, 200);
  });

  await t.test('every page renders; screenshots saved (desktop and phone)', async () => {
    for (const p of ['dashboard', 'queue', 'history', 'badmail', 'send', 'diagnostics', 'config']) {
      await page.goto(`${base}#${p}`);
      await page.waitForSelector('#page h1');
      await page.waitForTimeout(300);
      assert.equal(await page.locator('#page .error').count(), 0, `${p} shows no error: ${await page.locator('#page .error').allTextContents()}`);
      await shot(`page-${p}`);
    }
    const cfg = (await page.inputValue('#config-text')) ?? '';
    assert.ok(cfg.includes('adminPassword: "********"'), 'the admin hash is masked');
    const phone = await browser.newPage({ viewport: { width: 390, height: 844 }, isMobile: true });
    await phone.goto(base);
    await phone.fill('#login-user', 'admin');
    await phone.fill('#login-password', PASSWORD);
    await phone.click('#login-form button[type=submit]');
    await phone.waitForSelector('.cards');
    await shot('phone-dashboard', phone);
    await phone.close();
  });

  await t.test('config: an edit is validated with its line, then applied and reloaded; secrets stay on disk', async () => {
    await page.goto(`${base}#config`);
    await page.waitForSelector('#config-text');
    const original = await page.inputValue('#config-text');
    assert.ok(!original.includes('scrypt$'), 'the admin hash never reaches the page');
    const lines = original.split('\n');
    const at = lines.findIndex((l) => l.startsWith('delivery:'));
    assert.ok(at >= 0, original);
    const broken = [...lines.slice(0, at + 1), '  colour: blue', ...lines.slice(at + 1)].join('\n');
    await page.fill('#config-text', broken);
    await page.click('#config-validate');
    await page.waitForSelector('#config-result li');
    assert.match((await page.textContent('#config-result')) ?? '', new RegExp(`line ${at + 2}\\b.*colour`));
    await shot('config-invalid');
    const fixed = [...lines.slice(0, at + 1), '  concurrency: 7', ...lines.slice(at + 1)].join('\n');
    await page.fill('#config-text', fixed);
    await page.click('#config-apply');
    await page.waitForSelector('#config-result .ok-text');
    const onDisk = readFileSync(relay.configFile, 'utf8');
    assert.match(onDisk, /concurrency: 7/);
    assert.match(onDisk, /adminPassword: "?scrypt\$/, 'the real hash was kept, not "********"');
    for (let i = 0; i < 50 && !/configuration reloaded/.test(relay.output()); i++) await page.waitForTimeout(100);
    assert.match(relay.output(), /configuration reloaded/);
  });

  await t.test('/metrics counts what the tests sent', async () => {
    const text = await (await fetch(`${base}metrics`)).text();
    const sum = (re: RegExp): number => text.split('\n').filter((l) => re.test(l)).reduce((n, l) => n + Number(l.split(' ').pop()), 0);
    // Sent: one, two (after a deferral), three (refused, then re-injected from badmail through pickup).
    assert.equal(sum(/^smarthost_messages_accepted_total\{/), 4, text);
    assert.equal(sum(/^smarthost_recipients_delivered_total\{/), 3, text);
    assert.ok(sum(/^smarthost_recipients_deferred_total\{/) >= 1, text);
    assert.equal(sum(/^smarthost_recipients_bounced_total\{class="5\.7"/), 1, text);
    assert.match(text, /smarthost_queue_messages\{state="all"\} 0/);
  });
});
