// docs/deployment.md's HAProxy set-up with `option httpchk` on each relay's /healthz, run for real
// with Debian's HAProxy on loopback: a degraded relay (no upstream: mail waits in its queue) stays
// in rotation; a relay whose spool cannot be written is taken out, and the mail sent meanwhile
// (swaks through HAProxy) all goes to the other one; after the fix it comes back. Server states
// are read from HAProxy's own stats socket.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort, startRelay, waitPort, type RelayProcess } from '../helpers/relay.ts';
import { startUpstream, type Upstream } from '../helpers/upstream.ts';

const HAPROXY = ['/usr/sbin/haproxy', '/usr/bin/haproxy'].find((p) => existsSync(p));
const skip = HAPROXY ? undefined : 'HAProxy is not installed (Debian package haproxy)';
const tmp = mkdtempSync(path.join(os.tmpdir(), 'sh-health-ha-'));
const sock = path.join(tmp, 'stats.sock');

let haproxy: ChildProcess | undefined;
let upstream: Upstream;
const relays: Array<RelayProcess & { web: number }> = [];
let front = 0;

after(async () => {
  haproxy?.kill('SIGKILL');
  for (const r of relays) await r.stop();
  await upstream?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

/** `show stat` over the stats socket: each relay server's status (UP, DOWN, …). */
function serverStates(): Promise<Record<string, string>> {
  return new Promise((resolve, reject) => {
    const c = net.connect(sock);
    let out = '';
    c.on('data', (d) => (out += d));
    c.on('error', reject);
    c.on('end', () => {
      const [head, ...rows] = out.trim().split('\n');
      const cols = head.replace(/^# /, '').split(',');
      const at = (k: string) => cols.indexOf(k);
      const states: Record<string, string> = {};
      for (const r of rows.map((l) => l.split(','))) if (r[at('pxname')] === 'relays' && r[at('svname')].startsWith('relay')) states[r[at('svname')]] = r[at('status')];
      resolve(states);
    });
    c.write('show stat\n');
  });
}

async function waitStates(want: Record<string, string>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  let last: Record<string, string> = {};
  while (Date.now() < end) {
    last = await serverStates().catch(() => ({}));
    if (Object.entries(want).every(([k, v]) => last[k] === v)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`HAProxy servers ${JSON.stringify(last)}, expected ${JSON.stringify(want)}`);
}

function swaks(subject: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile('swaks', ['--server', `127.0.0.1:${front}`, '--from', 'scanner@contoso.example', '--to', 'boss@fabrikam.example', '--h-Subject', subject], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, out: `${stdout}${stderr}` });
    });
  });
}

before(async () => {
  if (skip) return;
  upstream = await startUpstream();
  for (const name of ['A', 'B']) {
    const web = await freePort();
    const dir = mkdtempSync(path.join(tmp, `relay${name}-`));
    // Relay A has no upstream: degraded (mail waits in its queue), but it accepts mail.
    const ups = name === 'A' ? 'upstreams: []' : `upstreams:\n  - name: loopback\n    url: smtp://127.0.0.1:${upstream.port}`;
    const r = await startRelay([ups, 'delivery:', '  scanInterval: 200ms', 'access:', '  relay: { mode: only, list: [127.0.0.1] }', 'web:', '  address: 127.0.0.1', `  port: ${web}`].join('\n'), { dir, waitFor: [web] });
    relays.push(Object.assign(r, { web }));
  }
  front = await freePort();
  const cfg = path.join(tmp, 'haproxy.cfg');
  writeFileSync(cfg, [
    'global', '  maxconn 200', `  stats socket ${sock} level admin`,
    'defaults', '  mode tcp', '  timeout connect 2s', '  timeout client 30s', '  timeout server 30s',
    // without it a check's answer must come within `inter`: a busy machine would flap the servers
    '  timeout check 5s',
    'frontend smtp', `  bind 127.0.0.1:${front}`, '  default_backend relays',
    'backend relays', '  balance roundrobin',
    // As docs/deployment.md: the check asks /healthz on the console's port.
    '  option httpchk', '  http-check send meth GET uri /healthz', '  http-check expect status 200', '  default-server inter 300 fall 3 rise 2',
    // no send-proxy here: the relays' listeners are not told to expect it in this test
    ...relays.map((r, i) => `  server relay${'AB'[i]} 127.0.0.1:${r.port} check port ${r.web}`),
    '',
  ].join('\n'));
  haproxy = spawn(HAPROXY!, ['-f', cfg, '-db'], { stdio: ['ignore', 'ignore', 'ignore'] });
  await waitPort(front);
});

test('HAProxy with httpchk on /healthz: degraded stays in, down goes out and comes back', { skip, timeout: 120_000 }, async () => {
  const a = relays[0];
  const degraded = await (await fetch(`http://127.0.0.1:${a.web}/healthz`)).json() as { status: string; checks: unknown };
  assert.equal(degraded.status, 'degraded', `relay A has no upstream: ${JSON.stringify(degraded.checks)}`);
  await waitStates({ relayA: 'UP', relayB: 'UP' });

  const incoming = path.join(a.mailroot, 'incoming');
  renameSync(incoming, `${incoming}.away`);
  writeFileSync(incoming, 'not a folder');
  try {
    await waitStates({ relayA: 'DOWN', relayB: 'UP' });
    for (let i = 0; i < 4; i++) {
      const r = await swaks(`through HAProxy ${i}`);
      assert.equal(r.code, 0, `${r.out}\nHAProxy servers: ${JSON.stringify(await serverStates().catch((e) => String(e)))}`);
    }
    await upstream.waitFor(4, 30_000);
    assert.deepEqual(upstream.messages.map((m) => /Subject: (.*)/.exec(m.raw.toString())?.[1]).sort(), [0, 1, 2, 3].map((i) => `through HAProxy ${i}`));
  } finally {
    rmSync(incoming);
    renameSync(`${incoming}.away`, incoming);
  }
  await waitStates({ relayA: 'UP', relayB: 'UP' });
});
