// The console used as an admin uses it, page by page, in real headless Chromium (Debian's chromium
// through playwright-core) against `smarthost serve`: each page's main action and its visible result.
//   Diagnostics  SPF check (pass and fail), SPF explain, Microsoft 365 DNS and propagation answered
//                by a loopback DNS server (SMARTHOST_DNS_RESOLVERS), shown as headings and tables
//   History      part of an address finds the message and says what it matched
//   Queue        a waiting message shows its subject and links to its detail
//   Badmail      Retry moves the message back (the row goes; the fixed upstream gets it)
//   Refusals     swaks from loopback with a relay list that excludes it: the refusal is listed
//                live with the reply swaks heard, and counted in /metrics by reason
//   Dashboard    the health panel says what /healthz says (degraded, with the reason)
// Screenshots of each page go to test-results/screenshots/pages-*.png.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { hashPassword } from '../../src/core/password.ts';
import { freePort, startRelay, ROOT, type RelayProcess } from '../helpers/relay.ts';
import { startUpstream, type Upstream } from '../helpers/upstream.ts';
import { startDnsServer, type TestDnsServer } from '../helpers/dns-server.ts';

const CHROMIUM = '/usr/bin/chromium';
const SHOTS = path.join(ROOT, 'test-results', 'screenshots');
const PASSWORD = 'console pages password';
const skip = existsSync(CHROMIUM) ? undefined : 'Debian chromium is not installed (/usr/bin/chromium)';

let relay: RelayProcess;
let upstream: Upstream;
let dns: TestDnsServer;
let browser: Browser;
let page: Page;
let base: string;
/** Recipients the upstream refuses for good (→ badmail) or for now (→ deferred, stays queued). */
const refuse = { permanent: new Set<string>(), temporary: new Set<string>() };

before(async () => {
  if (skip) return;
  mkdirSync(SHOTS, { recursive: true });
  upstream = await startUpstream({
    onRcpt: (a) => (refuse.permanent.has(a) ? { code: 550, message: '5.1.1 Recipient address rejected: User unknown' }
      : refuse.temporary.has(a) ? { code: 451, message: '4.3.2 Mailbox temporarily unavailable' } : undefined),
  });
  dns = await startDnsServer({
    'contoso.example': [{ TXT: 'v=spf1 ip4:192.0.2.0/24 include:_spf.contoso.example -all' }, { MX: [0, 'contoso-example.mail.protection.outlook.com'] }],
    '_spf.contoso.example': [{ TXT: 'v=spf1 ip4:198.51.100.0/28 -all' }],
    'autodiscover.contoso.example': [{ CNAME: 'autodiscover.outlook.com' }],
  });
  const webPort = await freePort();
  const hash = await hashPassword(PASSWORD, { N: 1024 });
  relay = await startRelay([
    'access:',
    '  relay: { mode: only, list: [192.0.2.1] }   # loopback may connect, not relay',
    'upstreams:',
    '  - name: loopback',
    `    url: smtp://127.0.0.1:${upstream.port}`,
    'delivery:',
    '  scanInterval: 300ms',
    'ndr:',
    '  to: off',
    'pickup:',
    '  interval: 300ms',
    '  settle: 200ms',
    'web:',
    '  address: 127.0.0.1',
    `  port: ${webPort}`,
    `  adminPassword: "${hash}"`,
    '  health: { queueAge: 1s }',
  ].join('\n'), { waitFor: [webPort], env: { SMARTHOST_DNS_RESOLVERS: `127.0.0.1:${dns.port}` } });
  base = `http://127.0.0.1:${webPort}/`;
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'] });
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await page.goto(base);
  await page.fill('#login-user', 'admin');
  await page.fill('#login-password', PASSWORD);
  await page.click('#login-form button[type=submit]');
  await page.waitForSelector('.cards');
});

after(async () => {
  await browser?.close();
  await relay?.stop();
  await upstream?.stop();
  await dns?.stop();
});

const shot = (name: string) => page.screenshot({ path: path.join(SHOTS, `pages-${name}.png`), fullPage: true });

async function sendTest(to: string, subject: string): Promise<string> {
  await page.goto(`${base}#send`);
  await page.fill('#send-from', 'scanner@contoso.example');
  await page.fill('#send-to', to);
  await page.fill('#send-subject', subject);
  await page.click('#send-submit');
  return (await page.textContent('#send-queued', { timeout: 20_000 }))!;
}

function swaks(args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile('swaks', ['--server', `127.0.0.1:${relay.port}`, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, out: `${stdout}${stderr}` });
    });
  });
}

test('the console, page by page', { skip, timeout: 180_000 }, async (t) => {
  await t.test('Diagnostics: SPF check, SPF explain, Microsoft 365 DNS and propagation answer in words and tables', async () => {
    await page.goto(`${base}#diagnostics`);
    await page.waitForSelector('#tool-spf');
    assert.doesNotMatch((await page.textContent('#page')) ?? '', /\[object /, 'no object printed as text');
    for (const id of ['tool-spf', 'tool-spf-explain', 'tool-spf-build', 'tool-dns', 'tool-propagation', 'tool-headers']) assert.equal(await page.locator(`#${id}`).count(), 1, `${id} is offered`);

    await page.fill('#spf-domain', 'contoso.example');
    await page.fill('#spf-ip', '198.51.100.3');
    await page.click('#tool-spf button[type=submit]');
    const result = page.locator('#diag-out .diag-result');
    await result.waitFor();
    assert.equal(await result.getAttribute('data-verdict'), 'ok');
    assert.match((await result.locator('.summary').textContent()) ?? '', /SPF result: PASS — the client is authorized/);
    assert.match((await result.textContent()) ?? '', /Received-SPF: Pass \(smarthost: domain of contoso\.example designates\s+198\.51\.100\.3/);
    await shot('diagnostics-spf');

    // The statement "pass" where it must be false: an address outside the record.
    await page.fill('#spf-ip', '203.0.113.9');
    await page.click('#tool-spf button[type=submit]');
    await page.waitForSelector('#diag-out .diag-result[data-verdict="problem"]');
    assert.match((await page.textContent('#diag-out .summary')) ?? '', /SPF result: FAIL — the domain says this client is NOT authorized/);

    // Without an address the same tool lints the record.
    await page.fill('#spf-ip', '');
    await page.click('#tool-spf button[type=submit]');
    await page.waitForSelector('#diag-out h2:has-text("SPF lint of contoso.example")');
    assert.match((await page.textContent('#diag-out')) ?? '', /"v=spf1 ip4:192\.0\.2\.0\/24 include:_spf\.contoso\.example -all"/);

    await page.fill('#spfx-domain', 'contoso.example');
    await page.click('#tool-spf-explain button[type=submit]');
    await page.waitForSelector('#diag-out .diag-result h2:has-text("SPF explained")');
    assert.match((await page.textContent('#diag-out table')) ?? '', /include:_spf\.contoso\.example/);

    await page.fill('#dns-domain', 'contoso.example');
    await page.click('#tool-dns button[type=submit]');
    await page.waitForSelector('#diag-out h2:has-text("Microsoft 365 DNS records for contoso.example")');
    const mxRow = page.locator('#diag-out tbody tr').filter({ hasText: 'contoso-example.mail.protection.outlook.com' }).first();
    assert.match((await mxRow.textContent()) ?? '', /MX.*present/);
    assert.ok(await page.locator('#diag-out tbody tr').filter({ hasText: /missing/ }).count() > 0, 'the records this zone lacks are named');
    await shot('diagnostics-dns');

    await page.fill('#prop-name', 'contoso.example');
    await page.selectOption('#prop-type', 'MX');
    await page.click('#tool-propagation button[type=submit]');
    await page.waitForSelector('#diag-out h2:has-text("MX contoso.example across resolvers")');
    assert.match((await page.textContent('#diag-out tbody')) ?? '', new RegExp(`127\\.0\\.0\\.1:${dns.port}.*contoso-example\\.mail\\.protection\\.outlook\\.com`));
    assert.ok(dns.queries.some((q) => q.name === 'contoso.example' && q.type === 'MX'), 'the loopback DNS server was asked');
    // With the value the admin expects, an answer without it is flagged.
    await page.fill('#prop-expect', 'new-mx.example');
    await page.click('#tool-propagation button[type=submit]');
    await page.waitForSelector('#diag-out .diag-result[data-verdict="problem"] td:has-text("differs")');
    // Bad input gets a clear answer in words, on the page.
    await page.fill('#dns-verification', 'ms-12');
    await page.click('#tool-dns button[type=submit]');
    assert.match((await page.textContent('#diag-out .error', { timeout: 20_000 })) ?? '', /verification: the TXT value from the admin center, e\.g\. MS=ms12345678/);
    await page.fill('#dns-verification', '');

    // The builder: a TXT value to copy; and a refusal, with why, when an include does not resolve.
    await page.fill('#spfb-domain', 'contoso.example');
    await page.fill('#spfb-include', '_spf.contoso.example');
    await page.fill('#spfb-ip', '203.0.113.7');
    await page.click('#tool-spf-build button[type=submit]');
    await page.waitForSelector('#diag-out .diag-result[data-verdict="ok"] h2:has-text("SPF record for contoso.example")');
    assert.match((await page.textContent('#diag-out pre')) ?? '', /^"v=spf1 .*ip4:203\.0\.113\.7.*include:_spf\.contoso\.example.* -all"$/);
    await page.fill('#spfb-include', 'nowhere.invalid');
    await page.click('#tool-spf-build button[type=submit]');
    await page.waitForSelector('#diag-out .diag-result[data-verdict="problem"] h3:has-text("Why it was refused")');
    await shot('diagnostics-build');

    // A junked message's headers: the verdict in words, authentication results in a table.
    await page.fill('#hdr-text', readFileSync(path.join(ROOT, 'test/fixtures/headers/m365-junked.eml'), 'utf8'));
    await page.click('#tool-headers button[type=submit]');
    await page.waitForSelector('#diag-out .diag-result[data-verdict="problem"] h2:has-text("Scanned document – invoice")');
    const auth = page.locator('#diag-out section').filter({ has: page.locator('h3:has-text("Authentication")') });
    assert.match((await auth.locator('tr').filter({ hasText: 'SPF' }).first().textContent()) ?? '', /fail/);
    assert.ok(await page.locator('#diag-out section').filter({ hasText: 'Hops (oldest first)' }).locator('tbody tr').count() >= 4);
    assert.equal(await page.locator('#diag-out').evaluate((el) => el.previousElementSibling?.id), 'tool-headers', 'the answer is under the tool that asked');
    await shot('diagnostics-headers');
  });

  let waitingId = '';
  await t.test('Queue: a waiting message shows its subject and links to its detail', async () => {
    refuse.temporary.add('wait@fabrikam.example');
    waitingId = await sendTest('wait@fabrikam.example', 'Scan waiting 0042');
    await page.goto(`${base}#queue`);
    const row = page.locator(`tr[data-id="${waitingId}"]`);
    await row.locator('.state[data-state="deferred"]').waitFor({ timeout: 30_000 });
    assert.equal(await row.locator('a.subject').textContent(), 'Scan waiting 0042');
    await shot('queue');
    await row.locator('a.subject').click();
    await page.waitForSelector('#page h1:has-text("Scan waiting 0042")');
    assert.match(page.url(), new RegExp(`#queued/${waitingId}$`));
    assert.match((await page.textContent('#page')) ?? '', /451.*4\.3\.2 Mailbox temporarily unavailable/);
    await shot('queue-detail');
  });

  await t.test('Dashboard: the health panel says what /healthz says', async () => {
    await page.goto(`${base}#dashboard`);
    await page.waitForSelector('#health[data-status="degraded"]', { timeout: 20_000 });
    const hz = (await (await fetch(`${base}healthz`)).json()) as { status: string; checks: { name: string; status: string; reason: string }[] };
    assert.equal(hz.status, 'degraded');
    const queueCheck = hz.checks.find((c) => c.name === 'queue')!;
    assert.equal(queueCheck.status, 'degraded');
    assert.match((await page.textContent('#health li[data-check="queue"]')) ?? '', /more than web\.health\.queueAge/);
    await shot('dashboard');
  });

  await t.test('History: part of an address finds the message, with what it matched', async () => {
    await page.goto(`${base}#history`);
    await page.fill('#h-recipient', 'wait@fabri');
    await page.click('#history-search');
    await page.waitForSelector('#history-body tbody tr:has-text("Scan waiting 0042")');
    assert.equal(await page.locator('#history-body tbody tr').count(), 1);
    assert.equal(await page.textContent('#history-body mark'), 'wait@fabrikam.example');
    assert.match((await page.textContent('#history-hint')) ?? '', /^1 message with a recipient containing "wait@fabri"$/);
    await shot('history');
    // A part no address has finds nothing (the search is not just "show everything").
    await page.fill('#h-recipient', 'nobody-here');
    await page.click('#history-search');
    await page.waitForSelector('#history-body td:has-text("nothing here")');
  });

  await t.test('Badmail: Retry moves the message back; the fixed upstream gets it', async () => {
    refuse.permanent.add('carol@fabrikam.example');
    const id = await sendTest('carol@fabrikam.example', 'Scan for carol');
    await page.goto(`${base}#badmail`);
    const entry = page.locator('#page tbody tr').filter({ hasText: '5.1.1' }).first();
    await entry.waitFor({ timeout: 30_000 });
    await shot('badmail');
    refuse.permanent.delete('carol@fabrikam.example');
    const name = await entry.getAttribute('data-id');
    await entry.locator('button[data-action="retry"]').click();
    await page.locator(`#page tr[data-id="${name}"]`).waitFor({ state: 'detached', timeout: 20_000 });
    await upstream.waitFor(1, 30_000);
    assert.ok(upstream.messages.some((m) => m.recipients.includes('carol@fabrikam.example') && m.raw.toString().includes('Scan for carol')), `delivered after the retry (${id})`);
  });

  await t.test('Refusals: a refused relay attempt is listed live and counted in /metrics', async () => {
    await page.goto(`${base}#refusals`);
    await page.waitForSelector('#refusals-body');
    const r = await swaks(['--from', 'printer@contoso.example', '--to', 'someone@fabrikam.example', '--h-Subject', 'refused']);
    assert.notEqual(r.code, 0);
    assert.match(r.out, /554 5\.7\.1 Relay access denied/);
    // No reload: the page updates from the live event stream.
    const row = page.locator('#refusals-body tbody tr').filter({ hasText: 'relay-denied' }).first();
    await row.waitFor({ timeout: 20_000 });
    const text = (await row.textContent()) ?? '';
    assert.match(text, /127\.0\.0\.1/);
    assert.match(text, /RCPT/);
    assert.match(text, /554 5\.7\.1 Relay access denied/);
    assert.match(text, /someone@fabrikam\.example/);
    await shot('refusals');
    const metrics = await (await fetch(`${base}metrics`)).text();
    assert.match(metrics, /^smarthost_refusals_total\{reason="relay-denied"\} 1$/m);
    assert.match(metrics, /^process_resident_memory_bytes [1-9]\d+$/m);
  });

  await t.test('no page shows an error or a word broken inside a badge', async () => {
    // At a narrow desktop width too, where table columns are squeezed and words would break.
    for (const [width, p] of [1280, 760].flatMap((w) => ['dashboard', 'queue', 'history', 'badmail', 'refusals', 'send', 'diagnostics', 'config'].map((x) => [w, x] as const))) {
      await page.setViewportSize({ width, height: 900 });
      await page.goto(`${base}#${p}`);
      await page.waitForSelector('#page h1');
      if (p === 'queue' || p === 'refusals') await page.waitForSelector('#page tbody .state');
      assert.equal(await page.locator('#page .error').count(), 0, `${p}: ${await page.locator('#page .error').allTextContents()}`);
      // A badge is one line: a second line would make it over twice its font size tall.
      const tall = await page.$$eval('#page .state', (els) => els.filter((e) => e.getBoundingClientRect().height > parseFloat(getComputedStyle(e).fontSize) * 2.2).map((e) => e.textContent));
      const count = await page.locator('#page .state').count();
      if (p === 'queue' || p === 'refusals') assert.ok(count > 0, `${p} has badges to measure`);
      assert.deepEqual(tall, [], `${p} at ${width}px: badges wrapped`);
    }
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  await t.test('on a phone, the new pages fit the screen', async () => {
    const phone = await browser.newPage({ viewport: { width: 390, height: 844 }, isMobile: true });
    try {
      await phone.goto(base);
      await phone.fill('#login-user', 'admin');
      await phone.fill('#login-password', PASSWORD);
      await phone.click('#login-form button[type=submit]');
      await phone.waitForSelector('.cards');
      for (const p of ['dashboard', 'refusals', 'queue', 'diagnostics']) {
        await phone.goto(`${base}#${p}`);
        await phone.waitForSelector('#page h1');
        if (p === 'diagnostics') {
          await phone.fill('#dns-domain', 'contoso.example');
          await phone.click('#tool-dns button[type=submit]');
          await phone.waitForSelector('#diag-out .diag-result');
        }
        const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        assert.ok(overflow <= 1, `${p} is ${overflow}px wider than the phone`);
        await phone.screenshot({ path: path.join(SHOTS, `pages-phone-${p}.png`), fullPage: true });
      }
    } finally {
      await phone.close();
    }
  });
});
