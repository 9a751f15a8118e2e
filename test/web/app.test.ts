// The console through app.inject(): who may get in, CSRF refusal, masking, validation with line
// numbers, input checks, metrics from events, live events over a real socket.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { systemClock } from '../../src/core/clock.ts';
import { silentLogger } from '../../src/core/logger.ts';
import { hashPassword, verifyPassword } from '../../src/core/password.ts';
import { openHistory, type HistoryStore } from '../../src/history/index.ts';
import { buildWeb } from '../../src/web/app.ts';
import type { WebConfig } from '../../src/config/sections/misc.ts';
import { fakeServices, SECRET, type Fakes } from './fakes.ts';
import { accepted, attempt } from '../history/events.ts';

const PASSWORD = 'correct horse battery staple';
let hash: string;
let history: HistoryStore;
const tmp = mkdtempSync(path.join(os.tmpdir(), 'smarthost-web-'));

before(async () => {
  hash = await hashPassword(PASSWORD, { N: 1024 });
  history = openHistory({ history: { store: 'sqlite', retention: 86_400_000 }, mailrootPath: tmp }, { logger: silentLogger(), clock: systemClock, purgeEveryMs: 0 });
});
after(async () => {
  await history.close();
  rmSync(tmp, { recursive: true, force: true });
});

const web = (over: Partial<WebConfig> = {}): { web: Omit<WebConfig, 'health'> } => ({
  web: { enabled: true, address: '127.0.0.1', port: 0, adminUser: 'admin', secureCookies: false, adminPassword: hash, ...over },
});

async function login(app: FastifyInstance): Promise<{ cookie: string; csrf: string }> {
  const r = await app.inject({ method: 'POST', url: '/api/login', payload: { user: 'admin', password: PASSWORD } });
  assert.equal(r.statusCode, 200, r.body);
  const c = r.cookies.find((x) => x.name === 'smarthost_session');
  assert.ok(c);
  return { cookie: `smarthost_session=${c.value}`, csrf: r.json().csrf };
}

test('password hashes verify only the right password, and a malformed hash never does', async () => {
  assert.equal(await verifyPassword(PASSWORD, hash), true);
  assert.equal(await verifyPassword('wrong', hash), false);
  assert.equal(await verifyPassword(PASSWORD, 'plain-text'), false);
  assert.equal(await verifyPassword(PASSWORD, hash.replace(/\$1024\$/, '$1000$')), false);
});

describe('who may start and log in', () => {
  test('refuses a non-loopback address without a password, and a plain-text password', async () => {
    await assert.rejects(buildWeb(fakeServices(history).services, web({ address: '0.0.0.0', adminPassword: undefined })), /not a loopback address/);
    await assert.rejects(buildWeb(fakeServices(history).services, web({ adminPassword: 'hunter2' })), /must be a scrypt hash/);
    const ok = await buildWeb(fakeServices(history).services, web({ address: '0.0.0.0' }));
    await ok.close();
  });

  test('login: wrong password refused, right one gives an HttpOnly SameSite=Strict cookie; API needs it', async () => {
    const app = await buildWeb(fakeServices(history).services, web(), { loginPerMinute: 100 });
    try {
      assert.equal((await app.inject({ url: '/api/queue' })).statusCode, 401);
      const bad = await app.inject({ method: 'POST', url: '/api/login', payload: { user: 'admin', password: 'nope' } });
      assert.equal(bad.statusCode, 401);
      assert.match(bad.json().error, /wrong user name or password/);
      const r = await app.inject({ method: 'POST', url: '/api/login', payload: { user: 'admin', password: PASSWORD } });
      const setCookie = String(r.headers['set-cookie']);
      assert.match(setCookie, /HttpOnly/);
      assert.match(setCookie, /SameSite=Strict/);
      assert.doesNotMatch(setCookie, /Secure/);
      const { cookie } = await login(app);
      const q = await app.inject({ url: '/api/queue', headers: { cookie } });
      assert.equal(q.statusCode, 200);
      assert.equal(q.json().messages[0].id, 'q1');
    } finally {
      await app.close();
    }
  });

  test('Secure cookies when configured', async () => {
    const app = await buildWeb(fakeServices(history).services, web({ secureCookies: true }));
    const r = await app.inject({ method: 'POST', url: '/api/login', payload: { user: 'admin', password: PASSWORD } });
    assert.match(String(r.headers['set-cookie']), /Secure/);
    await app.close();
  });

  test('login is rate-limited per client', async () => {
    const app = await buildWeb(fakeServices(history).services, web(), { loginPerMinute: 3 });
    const codes: number[] = [];
    for (let i = 0; i < 5; i++) codes.push((await app.inject({ method: 'POST', url: '/api/login', payload: { user: 'admin', password: 'x' } })).statusCode);
    assert.deepEqual(codes, [401, 401, 401, 429, 429]);
    await app.close();
  });

  test('user from a trusted reverse-proxy header, only from loopback', async () => {
    const app = await buildWeb(fakeServices(history).services, web({ adminPassword: undefined, trustProxyUserHeader: 'X-Remote-User' }));
    const r = await app.inject({ url: '/api/session', headers: { 'x-remote-user': 'CORP\\jdoe' } });
    assert.equal(r.statusCode, 200);
    assert.equal(r.json().user, 'CORP\\jdoe');
    const far = await app.inject({ url: '/api/session', headers: { 'x-remote-user': 'jdoe' }, remoteAddress: '192.0.2.7' });
    assert.equal(far.statusCode, 401);
    await app.close();
  });
});

describe('actions', () => {
  let f: Fakes;
  let app: FastifyInstance;
  let auth: { cookie: string; csrf: string };
  before(async () => {
    f = fakeServices(history);
    app = await buildWeb(f.services, web(), { loginPerMinute: 100 });
    auth = await login(app);
  });
  after(() => app.close());

  test('a state-changing request without the CSRF token is refused and does nothing', async () => {
    const none = await app.inject({ method: 'POST', url: '/api/queue/flush', headers: { cookie: auth.cookie } });
    assert.equal(none.statusCode, 403);
    assert.match(none.json().error, /CSRF/);
    const wrong = await app.inject({ method: 'DELETE', url: '/api/queue/q1', headers: { cookie: auth.cookie, 'x-csrf-token': 'x'.repeat(43) } });
    assert.equal(wrong.statusCode, 403);
    const foreign = await app.inject({ method: 'POST', url: '/api/queue/flush', headers: { cookie: auth.cookie, 'x-csrf-token': auth.csrf, origin: 'http://evil.example', host: 'localhost:80' } });
    assert.equal(foreign.statusCode, 403);
    assert.deepEqual(f.calls, []);
    const ok = await app.inject({ method: 'POST', url: '/api/queue/flush', headers: { cookie: auth.cookie, 'x-csrf-token': auth.csrf } });
    assert.equal(ok.statusCode, 200);
    assert.deepEqual(f.calls, ['flush']);
  });

  test('queue retry/delete, badmail retry, release, test send reach the services', async () => {
    const h = { cookie: auth.cookie, 'x-csrf-token': auth.csrf };
    f.calls.length = 0;
    assert.equal((await app.inject({ method: 'POST', url: '/api/queue/q1/retry', headers: h })).statusCode, 200);
    assert.equal((await app.inject({ method: 'POST', url: '/api/queue/nope/retry', headers: h })).statusCode, 404);
    assert.equal((await app.inject({ method: 'DELETE', url: '/api/queue/q1', headers: h })).statusCode, 200);
    assert.equal((await app.inject({ method: 'POST', url: '/api/badmail/m9/retry', headers: h })).statusCode, 200);
    assert.equal((await app.inject({ method: 'POST', url: '/api/badmail/..%2Fetc/retry', headers: h })).statusCode, 400);
    assert.equal((await app.inject({ method: 'POST', url: '/api/upstreams/o365/release', headers: h })).statusCode, 200);
    const sent = await app.inject({ method: 'POST', url: '/api/send-test', headers: h, payload: { from: 'scanner@office.example', to: 'me@example.com' } });
    assert.equal(sent.statusCode, 200);
    assert.deepEqual(f.calls, ['retry q1', 'retry nope', 'delete q1', 'badmail retry m9', 'release o365', 'send scanner@office.example -> me@example.com: Test email']);
    const bad = await app.inject({ method: 'POST', url: '/api/send-test', headers: h, payload: { from: 'not an address', to: 'me@example.com', subject: 'x\r\nBcc: victim@example.com' } });
    assert.equal(bad.statusCode, 400);
    assert.match(bad.json().error, /from: an address like name@example.com; subject: one line of text/);
    const dl = await app.inject({ url: '/api/badmail/m9/download', headers: { cookie: auth.cookie } });
    assert.equal(dl.headers['content-type'], 'message/rfc822');
    assert.match(dl.body, /Subject: bad/);
  });

  test('config: secrets masked everywhere; validation names lines; apply keeps masked secrets', async () => {
    const c = await app.inject({ url: '/api/config', headers: { cookie: auth.cookie } });
    assert.equal(c.statusCode, 200);
    assert.ok(!c.body.includes(SECRET), 'the upstream password is not sent');
    assert.ok(!c.body.includes('scrypt$x'), 'the admin hash is not sent');
    assert.match(c.json().text, /password: "\*\*\*\*\*\*\*\*"/);
    assert.match(c.json().text, /# relay config/, 'comments kept');
    const h = { cookie: auth.cookie, 'x-csrf-token': auth.csrf };
    const broken = `mailroot: ./mailroot\nupstreams:\n  - name: o365\n    url: smtp+starttls://smtp.office365.com\n    maxConnections: "five"\n    colour: blue\n`;
    const v = await app.inject({ method: 'POST', url: '/api/config/validate', headers: h, payload: { text: broken } });
    assert.equal(v.statusCode, 200);
    const problems = v.json().problems as { line: number; message: string; path: string }[];
    assert.equal(v.json().ok, false);
    assert.ok(problems.some((p) => p.line === 5), JSON.stringify(problems));
    assert.ok(problems.some((p) => p.line === 6), JSON.stringify(problems));
    const refused = await app.inject({ method: 'POST', url: '/api/config/apply', headers: h, payload: { text: broken } });
    assert.equal(refused.statusCode, 422);
    assert.equal(f.applied.length, 0);
    const edited = c.json().text.replace('smtp.office365.com', 'smtp2.office365.com');
    const ok = await app.inject({ method: 'POST', url: '/api/config/apply', headers: h, payload: { text: edited } });
    assert.equal(ok.statusCode, 200, ok.body);
    assert.equal(f.applied.length, 1);
    assert.match(f.applied[0], new RegExp(`password: "?${SECRET}`), 'the real secret is put back');
    assert.match(f.applied[0], /smtp2\.office365\.com/);
    for (const url of ['/api/dashboard', '/api/upstreams', '/api/queue', '/api/queue/q1', '/metrics', '/healthz', '/api/session']) {
      const r = await app.inject({ url, headers: { cookie: auth.cookie } });
      assert.ok(!r.body.includes(SECRET), `${url} leaks no secret`);
    }
  });

  test('history search and timeline through the API', async () => {
    const t = Date.now() - 60_000;
    history.record(accepted('web1', t, 'scanner@office.example', ['dana@example.com'], { subject: 'Scan' }));
    history.record(attempt('web1', t + 10, [{ recipient: 'dana@example.com', action: 'delivered', status: '2.0.0', diagnostic: '250 OK' }]));
    await history.flush();
    const r = await app.inject({ url: '/api/history?recipient=dana@example.com&sender=&status=', headers: { cookie: auth.cookie } });
    assert.equal(r.statusCode, 200, r.body);
    assert.deepEqual(r.json().messages.map((m: { id: string }) => m.id), ['web1']);
    const d = await app.inject({ url: '/api/history/web1', headers: { cookie: auth.cookie } });
    assert.deepEqual(d.json().timeline.map((e: { kind: string }) => e.kind), ['accepted', 'attempt']);
    const bad = await app.inject({ url: '/api/history?from=yesterday', headers: { cookie: auth.cookie } });
    assert.equal(bad.statusCode, 400);
    assert.match(bad.json().error, /from: a date/);
  });

  test('/metrics counts what the events said; /healthz answers', async () => {
    const before = await app.inject({ url: '/metrics' });
    const count = (text: string, re: RegExp): number => text.split('\n').filter((l) => re.test(l)).reduce((n, l) => n + Number(l.split(' ').pop()), 0);
    const acc0 = count(before.body, /^smarthost_messages_accepted_total/);
    f.emit(accepted('x1', Date.now(), 'a@b.example', ['c@d.example']));
    f.emit(accepted('x2', Date.now(), 'a@b.example', ['c@d.example', 'e@d.example']));
    f.emit(attempt('x1', Date.now(), [{ recipient: 'c@d.example', action: 'delivered', status: '2.0.0' }]));
    f.emit(attempt('x2', Date.now(), [{ recipient: 'c@d.example', action: 'failed', status: '5.7.1' }, { recipient: 'e@d.example', action: 'delayed', status: '4.4.1' }]));
    const m = (await app.inject({ url: '/metrics' })).body;
    assert.equal(count(m, /^smarthost_messages_accepted_total/) - acc0, 2);
    assert.match(m, /smarthost_recipients_bounced_total\{class="5\.7",reason="security_policy",route="default"\} 1/);
    assert.match(m, /smarthost_recipients_deferred_total\{upstream="o365",route="default"\} 1/);
    // an attempt on a route (routing) carries its route label
    f.emit({ ...attempt('x3', Date.now(), [{ recipient: 'c@d.example', action: 'delivered', status: '2.0.0' }]), route: 'contoso' } as ReturnType<typeof attempt>);
    assert.match((await app.inject({ url: '/metrics' })).body, /smarthost_recipients_delivered_total\{upstream="o365",route="contoso"\} 1/);
    assert.match(m, /smarthost_upstream_latency_seconds_count\{upstream="o365"\} 2/);
    assert.match(m, /smarthost_queue_messages\{state="all"\} 1/);
    assert.match(m, /smarthost_queue_oldest_age_seconds (59\d|60\d)/);
    assert.match(m, /smarthost_token_renewals_total\{upstream="o365"\} 3/);
    assert.match(m, /smarthost_tls_certificate_days_left 42/);
    assert.match(m, /^process_resident_memory_bytes \d+$/m);
    assert.match(m, /^process_cpu_seconds_total \d+(\.\d+)?$/m);
    assert.match(m, /^nodejs_heap_size_used_bytes \d+$/m);
    // The fakes' upstream is parked: the relay still accepts mail (200), but it is not "ok".
    const hz = await app.inject({ url: '/healthz' });
    assert.equal(hz.statusCode, 200);
    assert.equal(hz.json().status, 'degraded');
    assert.match(hz.json().checks.find((c: { name: string }) => c.name === 'upstream o365').reason, /^parked: authentication refused/);
    assert.equal((await app.inject({ url: '/healthz?strict' })).statusCode, 503);
  });

  test('the queue filters by route; a split message is listed under each of its routes', async () => {
    f.queue.push({ id: 'split1', state: 'deferred', mailFrom: 'scan@contoso.com', recipients: ['a@x.example'], receivedAt: new Date().toISOString(), size: 10, route: 'contoso,fabrikam' });
    try {
      const ids = async (route: string) => (await app.inject({ url: `/api/queue?route=${route}`, headers: { cookie: auth.cookie } })).json().messages.map((m: { id: string }) => m.id);
      assert.deepEqual(await ids('fabrikam'), ['split1']);
      assert.deepEqual(await ids('contoso'), ['split1']);
      assert.deepEqual(await ids('conto'), [], 'whole route names only');
    } finally {
      f.queue.pop();
    }
  });

  test('the page is served with a strict Content-Security-Policy', async () => {
    const r = await app.inject({ url: '/' });
    assert.equal(r.statusCode, 200);
    assert.match(r.body, /<script src="\/ui\/app.js"/);
    assert.match(String(r.headers['content-security-policy']), /script-src 'self'/);
    assert.equal((await app.inject({ url: '/ui/app.js' })).statusCode, 200);
  });
});

test('live events reach the browser over Server-Sent Events', async () => {
  const f = fakeServices(history);
  const app = await buildWeb(f.services, web({ adminPassword: undefined }));
  await app.listen({ host: '127.0.0.1', port: 0 });
  const port = (app.server.address() as { port: number }).port;
  try {
    const got = await new Promise<string>((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port, path: '/api/events' }, (res) => {
        assert.equal(res.headers['content-type'], 'text/event-stream');
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buf += chunk;
          if (buf.includes(': connected')) f.emit(accepted('live1', Date.now(), 'a@b.example', ['c@d.example']));
          if (buf.includes('live1')) {
            req.destroy();
            resolve(buf);
          }
        });
      });
      req.on('error', (e) => (e.message.includes('aborted') ? undefined : reject(e)));
      setTimeout(() => reject(new Error('no event within 5 s')), 5000).unref();
    });
    assert.match(got, /event: queue\ndata: \{"type":"accepted","id":"live1"/);
    // A browser that stays connected does not hold up a shutdown.
    const held = http.get({ host: '127.0.0.1', port, path: '/api/events' });
    held.on('error', () => {});
    await new Promise((r) => held.once('response', r));
    const t0 = Date.now();
    const hung = new Promise((_, reject) => setTimeout(() => reject(new Error('app.close() waited for the open event stream')), 3000).unref());
    try {
      await Promise.race([app.close(), hung]);
    } finally {
      held.destroy();
    }
    assert.ok(Date.now() - t0 < 2000, `closed in ${Date.now() - t0} ms with a stream open`);
  } finally {
    await app.close();
  }
});
