// Health means health: /healthz and `smarthost status` against a running relay (`smarthost serve`),
// each state provoked for real — a parked upstream (a loopback upstream refusing our credentials
// with 535), an old message in the queue (an unreachable upstream, a small web.health.queueAge), the
// history store down (PostgreSQL stopped),
// down (the spool's incoming/ replaced by a file; the listener at its connection limit; the relay
// stopped) — and "ok" checked where it must be false. swaks is the client.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { startRelay, freePort, type RelayProcess } from '../helpers/relay.ts';
import { startUpstream, type Upstream } from '../helpers/upstream.ts';
import { runCli } from '../helpers/cli.ts';
import { findPgBin, startPostgres } from '../history/pg-server.ts';

interface Report { status: string; checks: { name: string; status: string; reason: string }[] }

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
});

function swaks(port: number, to: string, subject: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile('swaks', ['--server', `127.0.0.1:${port}`, '--from', 'scanner@contoso.com', '--to', to, '--h-Subject', subject, '--body', 'page'], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, out: `${stdout}${stderr}` });
    });
  });
}

async function relayWith(yaml: string, opts: Parameters<typeof startRelay>[1] & { queueAge?: string } = {}): Promise<RelayProcess & { web: number }> {
  const web = await freePort();
  const r = await startRelay(`${yaml}\nweb:\n  address: 127.0.0.1\n  port: ${web}\n  health:\n    queueAge: ${opts.queueAge ?? '30m'}`, { ...opts, waitFor: [web] });
  cleanups.push(async () => {
    await r.stop();
    rmSync(r.dir, { recursive: true, force: true });
  });
  return Object.assign(r, { web });
}

async function health(r: { web: number }, query = ''): Promise<{ code: number; body: Report }> {
  const res = await fetch(`http://127.0.0.1:${r.web}/healthz${query}`);
  return { code: res.status, body: (await res.json()) as Report };
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}${last ? ` (${String(last)})` : ''}`);
}

const check = (r: Report, name: RegExp) => r.checks.find((c) => name.test(c.name));

test('ok: a relay that delivers says ok (200, status exit 0)', async () => {
  const up = await startUpstream();
  cleanups.push(() => up.stop());
  const relay = await relayWith(`upstreams:\n  - name: loopback\n    url: smtp://127.0.0.1:${up.port}\ndelivery:\n  scanInterval: 200ms`);
  assert.equal((await swaks(relay.port, 'boss@fabrikam.example', 'ok case')).code, 0);
  await up.waitFor(1);
  const h = await waitFor('the upstream marked ok', async () => {
    const x = await health(relay);
    return check(x.body, /^upstream loopback$/)?.reason.includes('worked') ? x : undefined;
  });
  assert.equal(h.code, 200);
  assert.equal(h.body.status, 'ok', JSON.stringify(h.body));
  for (const name of [/^smtp 127\.0\.0\.1:/, /^spool$/, /^queue$/, /^history$/]) assert.equal(check(h.body, name)?.status, 'ok', `${name}: ${JSON.stringify(h.body)}`);
  assert.equal((await health(relay, '?strict')).code, 200);
  const st = await runCli(['status', '--config', relay.configFile]);
  assert.equal(st.code, 0, st.stdout + st.stderr);
  assert.match(st.stdout, /smarthost is OK/);
});

test('degraded: an upstream that refuses our credentials (535) parks; /healthz 200 for the balancer, ?strict 503 for monitoring; status exit 1', async () => {
  const up: Upstream = await startUpstream({ tls: true, auth: { user: 'scanner@contoso.com', pass: 'right' } });
  cleanups.push(() => up.stop());
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sh-health-'));
  writeFileSync(path.join(dir, 'ca.pem'), up.ca!);
  const relay = await relayWith([
    'upstreams:', '  - name: o365', `    url: smtp+starttls://localhost:${up.port}`, '    username: scanner@contoso.com', '    password: wrong', `    ca: ${path.join(dir, 'ca.pem')}`,
    'delivery:', '  scanInterval: 200ms',
  ].join('\n'), { dir });
  // Before any mail the relay is ok: the statement below must change, not merely be "not ok" by default.
  assert.equal((await health(relay)).body.status, 'ok');
  assert.equal((await swaks(relay.port, 'boss@fabrikam.example', 'parked case')).code, 0);
  const h = await waitFor('the upstream parked', async () => {
    const x = await health(relay);
    return check(x.body, /^upstream o365$/)?.status === 'degraded' ? x : undefined;
  });
  assert.equal(h.code, 200, 'a load balancer keeps sending: mail is still accepted');
  assert.equal(h.body.status, 'degraded');
  assert.notEqual(h.body.status, 'ok');
  assert.match(check(h.body, /^upstream o365$/)!.reason, /parked: .*535/);
  const strict = await health(relay, '?strict');
  assert.equal(strict.code, 503, 'monitoring alerts');
  assert.equal(strict.body.status, 'degraded');
  const st = await runCli(['status', '--config', relay.configFile]);
  assert.equal(st.code, 1, st.stdout + st.stderr);
  assert.match(st.stdout, /DEGRADED[\s\S]*WARN  upstream o365: parked: .*535/);
  const json = JSON.parse((await runCli(['status', '--config', relay.configFile, '--json'])).stdout) as Report;
  assert.equal(json.status, 'degraded');
});

test('degraded: the oldest message waits longer than web.health.queueAge (unreachable upstream)', async () => {
  const closed = await freePort(); // nothing listens there
  const relay = await relayWith(`upstreams:\n  - name: gone\n    url: smtp://127.0.0.1:${closed}\ndelivery:\n  scanInterval: 200ms`, { queueAge: '2s' });
  assert.equal((await swaks(relay.port, 'boss@fabrikam.example', 'old case')).code, 0);
  const q = await waitFor('the queue check to say the message is too old', async () => {
    const x = await health(relay);
    const c = check(x.body, /^queue$/);
    return c?.status === 'degraded' ? { x, c } : undefined;
  });
  assert.equal(q.x.code, 200);
  assert.equal(q.x.body.status, 'degraded');
  assert.match(q.c.reason, /1 message waiting, the oldest for \d+ s \(more than web\.health\.queueAge, 2 s\).*deferred.*ECONNREFUSED/);
});

test('degraded: the history store is down (PostgreSQL stopped); ok again once it is back and caught up', { skip: findPgBin() ? undefined : 'PostgreSQL is not installed (Debian package postgresql)' }, async () => {
  const pg = (await startPostgres())!;
  cleanups.push(async () => pg.stop());
  const up = await startUpstream();
  cleanups.push(() => up.stop());
  const relay = await relayWith(`upstreams:\n  - name: loopback\n    url: smtp://127.0.0.1:${up.port}\ndelivery:\n  scanInterval: 200ms\nhistory:\n  store: postgres\n  postgresUrl: "${pg.url}"`);
  await waitFor('history ok at start', async () => (check((await health(relay)).body, /^history$/)?.status === 'ok' ? true : undefined));
  pg.pause();
  assert.equal((await swaks(relay.port, 'boss@fabrikam.example', 'history down case')).code, 0, 'mail still flows');
  const h = await waitFor('history reported failing', async () => {
    const x = await health(relay);
    return check(x.body, /^history$/)?.status === 'degraded' ? x : undefined;
  });
  assert.equal(h.code, 200);
  assert.equal(h.body.status, 'degraded');
  assert.match(check(h.body, /^history$/)!.reason, /history store is not writable .*events waiting/);
  pg.start();
  await waitFor('history caught up', async () => ((await health(relay)).body.status === 'ok' ? true : undefined), 60_000);
});

test('down: the spool cannot be written, or the listener is full; 503 and status exit 2; healthy again after the fix', async () => {
  const up = await startUpstream();
  cleanups.push(() => up.stop());
  const relay = await relayWith(`upstreams:\n  - name: loopback\n    url: smtp://127.0.0.1:${up.port}\nlimits:\n  maxConnections: 1`);
  // The start-up helper's port probe holds the one connection until the relay sees it close.
  await waitFor('healthy once the start-up probe has left', async () => ((await health(relay)).code === 200 ? true : undefined));
  // incoming/ replaced by a file: what root's permissions would not stop, ENOTDIR does.
  const incoming = path.join(relay.mailroot, 'incoming');
  renameSync(incoming, `${incoming}.away`);
  writeFileSync(incoming, 'not a folder');
  try {
    const h = await health(relay);
    assert.equal(h.code, 503);
    assert.equal(h.body.status, 'down');
    assert.match(check(h.body, /^spool$/)!.reason, /cannot be written .*ENOTDIR.*new mail is refused/);
    const st = await runCli(['status', '--config', relay.configFile]);
    assert.equal(st.code, 2, st.stdout + st.stderr);
    assert.match(st.stdout, /smarthost is DOWN[\s\S]*DOWN  spool:/);
  } finally {
    rmSync(incoming);
    renameSync(`${incoming}.away`, incoming);
  }
  assert.equal((await health(relay)).code, 200);

  // One connection held open fills limits.maxConnections: the next client would hear 421.
  const held = net.connect(relay.port, '127.0.0.1');
  cleanups.push(async () => void held.destroy());
  await new Promise<void>((resolve) => held.once('data', () => resolve()));
  const full = await health(relay);
  assert.equal(full.code, 503, JSON.stringify(full.body));
  assert.match(check(full.body, /^smtp /)!.reason, /connection limit \(1 of limits\.maxConnections 1\)/);
  held.destroy();
  await waitFor('the connection released', async () => ((await health(relay)).code === 200 ? true : undefined));
});

test('status with the console off checks from outside: listener greets, spool writable; down once the relay stops', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sh-health-'));
  const relay = await startRelay('upstreams: []', { dir });
  cleanups.push(async () => {
    await relay.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const st = await runCli(['status', '--config', relay.configFile]);
  assert.match(st.stdout, /console is off[\s\S]*ok    smtp 127\.0\.0\.1:\d+: answers with a 220 greeting[\s\S]*ok    spool: writable/);
  assert.match(st.stdout, /\?     not known: upstreams and history: the console is off/);
  assert.equal(st.code, 0, st.stdout);
  await relay.stop();
  const down = await runCli(['status', '--config', relay.configFile]);
  assert.equal(down.code, 2, down.stdout);
  assert.match(down.stdout, /DOWN  smtp 127\.0\.0\.1:\d+: not accepting mail: .*ECONNREFUSED/);
});
