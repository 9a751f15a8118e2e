// The capability claim, for real: the generated unit's ExecStart, run as an unprivileged user with
// the unit's credentials (ambient and bounding set CAP_NET_BIND_SERVICE only, no_new_privs; setpriv
// does what systemd does with AmbientCapabilities/CapabilityBoundingSet/NoNewPrivileges), binds a
// port below 1024 and answers SMTP. Without the ambient capability the same command cannot.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { systemdUnit } from '../../src/service/systemd.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const UID = 64123; // no passwd entry needed: setpriv takes numbers
const asRoot = process.getuid?.() === 0;

/** A free port below 1024 on loopback, 25 when it is free. */
async function privilegedPort(): Promise<number> {
  for (const port of [25, 587, 465, 24, 26, 1000, 999, 998]) {
    const server = net.createServer();
    const ok = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (ok) {
      await new Promise((r) => server.close(r));
      return port;
    }
  }
  throw new Error('no free privileged port on 127.0.0.1');
}

/** ExecStart's words (systemd quoting: "…" with \" and \\ escapes). */
function execStartWords(unit: string): string[] {
  const line = /^ExecStart=(.*)$/m.exec(unit)![1];
  return [...line.matchAll(/"((?:[^"\\]|\\.)*)"|(\S+)/g)].map((m) => (m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2]).replace(/%%/g, '%').replace(/\$\$/g, '$'));
}

function setup() {
  const dir = mkdtempSync(path.join(tmpdir(), 'sh-cap-'));
  chmodSync(dir, 0o755);
  const mailroot = path.join(dir, 'spool');
  const configFile = path.join(dir, 'smarthost.yaml');
  return { dir, mailroot, configFile };
}

function start(words: string[], ambient: boolean): ChildProcess {
  const caps = ambient ? ['--inh-caps=-all,+net_bind_service', '--ambient-caps=-all,+net_bind_service'] : ['--inh-caps=-all'];
  return spawn('setpriv', [`--reuid=${UID}`, `--regid=${UID}`, '--clear-groups', ...caps, '--bounding-set=-all,+net_bind_service', '--no-new-privs', '--',
    'env', '-i', 'HOME=/nonexistent', 'PATH=/usr/bin:/bin', ...words], { stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Resolves with the output once `marker` appears, or rejects when the process exits first. */
function waitFor(child: ChildProcess, marker: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    const onData = (d: Buffer) => {
      out += d;
      if (marker.test(out)) resolve(out);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => reject(Object.assign(new Error(`exited ${code} before ${marker}: ${out}`), { out, code })));
  });
}

test('ExecStart as an unprivileged user binds a port below 1024 with CAP_NET_BIND_SERVICE alone', { skip: !asRoot && 'needs root to change user' }, async () => {
  const { dir, mailroot, configFile } = setup();
  mkdirSync(mailroot, { mode: 0o750 });
  chownSync(mailroot, UID, UID); // as service install does
  const port = await privilegedPort();
  writeFileSync(configFile, `mailroot: ${mailroot}\nlisten: [{ address: 127.0.0.1, port: ${port}, tls: none }]\nweb: { enabled: false }\nhistory: { store: off }\n`);
  chmodSync(configFile, 0o644);
  const words = execStartWords(systemdUnit({ launcher: { executable: process.execPath, prefix: [path.join(ROOT, 'bin/smarthost.js')], sea: false }, configFile, mailroot, version: 'test', ownConfigDir: false }));
  assert.deepEqual(words.slice(-3), ['serve', '--config', configFile]);

  // Without the ambient capability: refused, so the test below can tell the difference.
  const denied = start(words, false);
  await assert.rejects(waitFor(denied, /smarthost is running/), (err: Error & { out: string }) => /EACCES|permission/i.test(err.out));

  const child = start(words, true);
  try {
    await waitFor(child, /smarthost is running/);
    const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
    const cap = (name: string) => /^(\w+):\s+([0-9a-f]+)$/m.exec(status.split('\n').find((l) => l.startsWith(name))!)![2];
    assert.equal(status.match(/^Uid:\s+(\d+)/m)![1], String(UID));
    // Bit 10 is CAP_NET_BIND_SERVICE (linux/capability.h): effective, ambient and bounding hold it alone.
    for (const name of ['CapEff', 'CapAmb', 'CapBnd']) assert.equal(cap(name), '0000000000000400', name);
    assert.equal(status.match(/^NoNewPrivs:\s+(\d)/m)![1], '1');
    const socket = net.connect(port, '127.0.0.1');
    const [banner] = (await once(socket, 'data')) as [Buffer];
    assert.match(banner.toString(), /^220 /);
    socket.destroy();
  } finally {
    child.kill('SIGTERM');
    await once(child, 'exit');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the service user has no other privilege: without the install\'s chown it cannot create its spool', { skip: !asRoot && 'needs root to change user' }, async () => {
  const { dir, mailroot, configFile } = setup();
  // A mailroot in a root-owned folder: no CAP_DAC_OVERRIDE, so the relay says EACCES and stops.
  writeFileSync(configFile, `mailroot: ${mailroot}\nlisten: [{ address: 127.0.0.1, port: 1, tls: none }]\nweb: { enabled: false }\nhistory: { store: off }\n`);
  const words = execStartWords(systemdUnit({ launcher: { executable: process.execPath, prefix: [path.join(ROOT, 'bin/smarthost.js')], sea: false }, configFile, mailroot, version: 'test', ownConfigDir: false }));
  const child = start(words, true);
  await assert.rejects(waitFor(child, /smarthost is running/), (err: Error & { out: string; code: number }) => err.code !== 0 && /EACCES|permission/i.test(err.out) && err.out.includes(mailroot));
  rmSync(dir, { recursive: true, force: true });
});
