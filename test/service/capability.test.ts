// The capability claim, for real: the generated unit's ExecStart, run as an unprivileged user with
// the unit's credentials (ambient and bounding set CAP_NET_BIND_SERVICE only, no_new_privs; setpriv
// does what systemd does with AmbientCapabilities/CapabilityBoundingSet/NoNewPrivileges), under the
// unit's SystemCallFilter (expanded by systemd-analyze, loaded with libseccomp) and with only its
// ReadWritePaths writable (a private mount namespace with / read-only, as ProtectSystem=strict),
// binds a port below 1024 and relays a message into its spool. Without the ambient capability it
// cannot bind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { systemdUnit } from '../../src/service/systemd.ts';
import { hashPassword } from '../../src/core/password.ts';

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

async function freePort(): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
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

/** The system calls a unit's SystemCallFilter= lines allow: allowed groups minus ~denied ones. */
function allowedSyscalls(unit: string): string[] {
  const expand = (group: string): string[] => execFileSync('systemd-analyze', ['syscall-filter', group], { encoding: 'utf8' })
    .split('\n').slice(1).map((l) => l.trim()).filter((l) => l && !l.startsWith('#'))
    .flatMap((n) => (n.startsWith('@') ? expand(n) : [n]));
  const allow = new Set<string>();
  const deny = new Set<string>();
  for (const [, value] of unit.matchAll(/^SystemCallFilter=(.*)$/gm)) {
    const [set, list] = value.startsWith('~') ? [deny, value.slice(1)] : [allow, value];
    for (const item of list.split(/\s+/).filter(Boolean)) for (const n of item.startsWith('@') ? expand(item) : [item]) set.add(n);
  }
  assert.ok(allow.size > 100 && deny.size > 10, 'the unit has an allow-list and a deny-list');
  return [...allow].filter((n) => !deny.has(n));
}

const SECCOMP = path.join(ROOT, 'test/helpers/seccomp-exec.py');
const hasSeccomp = spawnSync('/usr/bin/python3', ['-c', 'import seccomp'], { stdio: 'ignore' }).status === 0;

interface Sandbox {
  /** File of allowed system calls (the unit's SystemCallFilter). */
  filter: string;
  /** The unit's ReadWritePaths: everything else is read-only (ProtectSystem=strict), in a mount namespace of its own. */
  writable: string[];
  /** Address family numbers of the unit's RestrictAddressFamilies. */
  families: number[];
}

/** linux/socket.h */
const AF: Record<string, number> = { AF_UNIX: 1, AF_INET: 2, AF_INET6: 10, AF_NETLINK: 16, AF_PACKET: 17 };

/** The unit's credentials: user, capabilities, no_new_privs; with a sandbox, its file system and system call filter. */
function start(words: string[], ambient: boolean, sandbox?: Sandbox): ChildProcess {
  const caps = ambient ? ['--inh-caps=-all,+net_bind_service', '--ambient-caps=-all,+net_bind_service'] : ['--inh-caps=-all'];
  const seccomp = sandbox ? ['/usr/bin/python3', SECCOMP, sandbox.filter, sandbox.families.join(',')] : [];
  const cmd = ['setpriv', `--reuid=${UID}`, `--regid=${UID}`, '--clear-groups', ...caps, '--bounding-set=-all,+net_bind_service', '--no-new-privs', '--',
    ...seccomp, '/usr/bin/env', '-i', 'HOME=/nonexistent', 'PATH=/usr/bin:/bin', ...words];
  if (!sandbox) return spawn(cmd[0], cmd.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  // Bind each writable path onto itself (a mount of its own stays read-write), then make / read-only.
  const script = `${sandbox.writable.map((_, i) => `mount --bind "$${i + 1}" "$${i + 1}" && `).join('')}mount -o remount,bind,ro / && shift ${sandbox.writable.length} && exec "$@"`;
  return spawn('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script, 'sh', ...sandbox.writable, ...cmd], { stdio: ['ignore', 'pipe', 'pipe'] });
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

test('ExecStart as an unprivileged user, under the unit\'s system call filter and read-only system, binds a port below 1024 with CAP_NET_BIND_SERVICE alone and relays', { skip: (!asRoot && 'needs root to change user') || (!hasSeccomp && 'python3-seccomp is not installed') }, async () => {
  const { dir, mailroot, configFile } = setup();
  mkdirSync(mailroot, { mode: 0o750 });
  chownSync(mailroot, UID, UID); // as service install does
  const port = await privilegedPort();
  // The console on 0.0.0.0 (it needs a password there) and history on: they must fit the sandbox too.
  const webPort = await freePort();
  writeFileSync(configFile, `mailroot: ${mailroot}\nlisten: [{ address: 127.0.0.1, port: ${port}, tls: none }]\n` +
    `web: { address: 0.0.0.0, port: ${webPort}, adminPassword: "${await hashPassword('test')}" }\n`);
  chmodSync(configFile, 0o644);
  const unit = systemdUnit({ launcher: { executable: process.execPath, prefix: [path.join(ROOT, 'bin/smarthost.js')], sea: false }, configFile, mailroot, version: 'test', ownConfigDir: false });
  const words = execStartWords(unit);
  assert.deepEqual(words.slice(-3), ['serve', '--config', configFile]);
  const filter = path.join(dir, 'syscalls.txt');
  writeFileSync(filter, allowedSyscalls(unit).join('\n'));
  chmodSync(filter, 0o644);

  const writable = /^ReadWritePaths=(.*)$/m.exec(unit)![1].split(' ');
  assert.deepEqual(writable, [mailroot]);
  const families = /^RestrictAddressFamilies=(.*)$/m.exec(unit)![1].split(' ').map((name) => AF[name]);
  assert.ok(families.every((n) => n > 0), 'every family is known to the test');
  const sandbox = { filter, writable, families };

  // The sandbox is in force: chown of one's own file to oneself (@privileged) is refused, and so is
  // a write outside ReadWritePaths even where the user's permissions would allow it.
  const own = path.join(mailroot, 'own');
  writeFileSync(own, '');
  chownSync(own, UID, UID);
  const outside = path.join(dir, 'outside');
  mkdirSync(outside, { mode: 0o777 });
  chmodSync(outside, 0o777);
  const probeJs = `const fs = require('fs');
    try { fs.chownSync(${JSON.stringify(own)}, ${UID}, ${UID}); console.log('chown allowed') } catch (e) { console.log('chown', e.code) }
    try { fs.writeFileSync(${JSON.stringify(path.join(outside, 'x'))}, ''); console.log('write allowed') } catch (e) { console.log('write', e.code) }
    try { require('os').networkInterfaces(); console.log('interfaces ok') } catch (e) { console.log('interfaces', e.code) }`;
  const probe = start([process.execPath, '-e', probeJs], true, sandbox);
  assert.match(await waitFor(probe, /interfaces \w+/), /chown EPERM\s+write EROFS\s+interfaces ok/);
  await once(probe, 'exit').catch(() => undefined);
  // Why the unit allows AF_NETLINK: without it the interface list fails, and Fastify asks for it when
  // the console listens on 0.0.0.0 (an uncaught error: the relay would not start).
  const noNetlink = start([process.execPath, '-e', probeJs], true, { ...sandbox, families: families.filter((n) => n !== AF.AF_NETLINK) });
  assert.match(await waitFor(noNetlink, /interfaces \w+/), /interfaces ERR_SYSTEM_ERROR/);
  await once(noNetlink, 'exit').catch(() => undefined);
  rmSync(own);

  // Without the ambient capability: refused, so the test below can tell the difference.
  const denied = start(words, false);
  await assert.rejects(waitFor(denied, /smarthost is running/), (err: Error & { out: string }) => /EACCES|permission/i.test(err.out));

  const child = start(words, true, sandbox);
  let log = '';
  child.stdout!.on('data', (d) => (log += d));
  child.stderr!.on('data', (d) => (log += d));
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
    const health = spawnSync('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', `http://127.0.0.1:${webPort}/`], { encoding: 'utf8' });
    assert.match(health.stdout, /^[23]\d\d$/, `console answered ${health.stdout}`);
    // A whole message, spool writes and fsyncs included, under the filter.
    const swaks = spawnSync('swaks', ['--server', '127.0.0.1', '--port', String(port), '--from', 'scanner@example.com', '--to', 'someone@example.org', '--body', 'scan', '--timeout', '60'], { encoding: 'utf8' });
    assert.equal(swaks.status, 0, swaks.stdout + swaks.stderr);
    assert.match(swaks.stdout, /<- {2}250 2\.0\.0 Ok: queued as (\S+)/);
    const queued = ['incoming', 'active', 'deferred'].flatMap((f) => readdirSync(path.join(mailroot, f)).filter((n) => n.endsWith('.eml')));
    assert.equal(queued.length, 1); // no upstream configured: it waits in the queue
    // A clean stop on SIGTERM, as systemctl stop sends: history written, nothing refused on the way.
    child.kill('SIGTERM');
    const [code] = await once(child, 'exit');
    assert.equal(code, 0, log);
    assert.ok(readdirSync(mailroot).includes('history.sqlite'), `no history.sqlite in ${readdirSync(mailroot)}`);
    const complaints = log.split('\n').filter((l) => /"level":(40|50|60)|EROFS|EPERM|EACCES/.test(l) && !l.includes('no upstream is configured'));
    assert.deepEqual(complaints, []);
  } finally {
    if (child.exitCode === null) {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
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
