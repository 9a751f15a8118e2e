// The single executables (scripts/build-exe.mjs) as users run them, with no Node anywhere:
//  - Linux x64 in a chroot holding only the binary and the libraries it links: relays swaks → binary
//    → a loopback upstream, serves the console from memory, and runs config check, spf check (a DNS
//    server on loopback), doctor, headers, queue and send; on a terminal its log is pretty;
//  - the container image: the Dockerfile's final stages built FROM scratch by buildah (offline),
//    its file system run as the image's config says (read-only, user 65534, its entrypoint, working
//    folder and environment, plus SMARTHOST_* variables only; volumes the only writable places);
//    relays, and the image's HEALTHCHECK passes while it runs and fails once it is gone;
//  - Linux arm64: an aarch64 ELF that answers under qemu-user;
//  - Windows x64: a PE32+ built; under wine, --version and config check from a test-only build on
//    Node 22 (wine 8.0 cannot run Node 24's V8: ../shared/research/packaging.md).
// The build runs once per test run; unchanged inputs reuse the binaries in .tmp/exe-test/.
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, readlinkSync, realpathSync, rmSync, statSync, writeFileSync, chownSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ROOT, NODE, freePort, waitPort } from '../helpers/relay.ts';
import { startUpstream, type Upstream } from '../helpers/upstream.ts';
import { startDnsServer, type TestDnsServer } from '../helpers/dns-server.ts';

const OUT24 = path.join(ROOT, '.tmp/exe-test/node24');
const OUT22 = path.join(ROOT, '.tmp/exe-test/node22');
const X64 = path.join(OUT24, 'smarthost-linux-x64');
const ARM64 = path.join(OUT24, 'smarthost-linux-arm64');
const WIN = path.join(OUT24, 'smarthost-win-x64.exe');
const WIN_TEST = path.join(OUT22, 'smarthost-win-x64.exe');
const isRoot = process.getuid?.() === 0;
// scripts/test.sh installs the Debian packages when it runs as root with apt: there a missing
// tool is a failure; elsewhere (a developer's machine) the part that needs it is skipped.
const canInstall = isRoot && existsSync('/usr/bin/apt-get');

const work = mkdtempSync(path.join(tmpdir(), 'sh-exe-'));
const cleanups: Array<() => Promise<unknown> | void> = [];
after(async () => {
  for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => {});
  rmSync(work, { recursive: true, force: true });
});

interface ImageConfig { User: string; Env: string[]; Entrypoint: string[]; Cmd: string[]; WorkingDir: string; Volumes?: Record<string, unknown>; Healthcheck?: { Test: string[] } }

interface Ran { code: number; stdout: string; stderr: string }
function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeout?: number } = {}): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, timeout: opts.timeout ?? 120_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

function needTool(t: TestContext, file: string, pkg: string): boolean {
  if (existsSync(file)) return true;
  if (canInstall) assert.fail(`${file} is missing: scripts/test.sh installs ${pkg}`);
  t.skip(`${file} is missing (Debian ${pkg}; scripts/test.sh installs it when run as root)`);
  return false;
}

before(async () => {
  // Two builds side by side (2 CPUs): the shipped binaries on the devDependency's Node, and the
  // test-only Windows build on Node 22 for wine.
  const build = (args: string[]) => run(NODE, [path.join(ROOT, 'scripts/build-exe.mjs'), ...args], { timeout: 900_000 });
  const [a, b] = await Promise.all([
    build(['--target', 'linux-x64,linux-arm64,win-x64', '--out', OUT24]),
    build(['--target', 'win-x64', '--node', '22.23.3', '--out', OUT22]),
  ]);
  assert.equal(a.code, 0, a.stderr);
  assert.equal(b.code, 0, b.stderr);
}, { timeout: 900_000 });

/** The image's root file system: the binary and what it links, nothing else (scripts/exe-rootfs.sh). */
async function rootfs(name: string): Promise<string> {
  const dir = path.join(work, name);
  const r = await run('bash', [path.join(ROOT, 'scripts/exe-rootfs.sh'), X64, dir]);
  assert.equal(r.code, 0, r.stderr);
  return dir;
}

function listFiles(dir: string, base = dir): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = path.join(dir, f);
    return statSync(p).isDirectory() ? listFiles(p, base) : [`/${path.relative(base, p)}`];
  });
}

interface Served { child: ChildProcess; output: () => string; stop(): Promise<void> }
async function serveWith(cmd: string, args: string[], env: NodeJS.ProcessEnv, ports: number[]): Promise<Served> {
  let out = '';
  const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d) => { out += d; });
  child.stderr!.on('data', (d) => { out += d; });
  const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`the binary exited (${code}) before listening:\n${out}`))));
  exited.catch(() => {});
  await Promise.race([Promise.all(ports.map((p) => waitPort(p, '127.0.0.1', 60_000))), exited]);
  const stop = () => new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
  cleanups.push(stop);
  return { child, output: () => out, stop };
}

/** Pids of the processes whose root directory is `root` (the ones a chroot started). */
function processesIn(root: string): number[] {
  const real = realpathSync(root);
  return readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map(Number).filter((pid) => {
    try {
      return readlinkSync(`/proc/${pid}/root`) === real;
    } catch {
      return false; // gone, or not ours to read
    }
  });
}

/**
 * Stops what runs inside the chroot: under `script`, killing `script` only hangs up its terminal,
 * and a relay takes SIGHUP as "reload the config" (as a daemon should), so it lived on after the
 * test, one per suite run.
 */
async function stopIn(root: string): Promise<void> {
  for (const pid of processesIn(root)) process.kill(pid, 'SIGTERM');
  await waitUntil(() => processesIn(root).length === 0, 40_000);
}

async function waitUntil(check: () => boolean, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) assert.fail('timed out');
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function upstream(): Promise<Upstream> {
  const u = await startUpstream();
  cleanups.push(() => u.stop());
  return u;
}

const swaks = (port: number, subject: string) => run('swaks', ['--server', `127.0.0.1:${port}`, '--from', 'scanner@contoso.test', '--to', 'someone@example.com', '--h-Subject', subject, '--body', 'scan attached']);

test('Linux x64: in a chroot with no Node, relays swaks → binary → upstream, serves the console; config check, spf check, doctor, headers, queue and send work', { timeout: 300_000 }, async (t) => {
  if (!isRoot) return t.skip('needs root for chroot');
  const root = await rootfs('chroot');
  const files = listFiles(root);
  // nothing but the program, its libraries and a few /etc files: no node, no shell
  assert.deepEqual(files.filter((f) => !f.startsWith('/lib') && !f.startsWith('/etc/')), ['/smarthost']);
  assert.ok(!files.some((f) => /(^|\/)(node|nodejs|sh|bash)$/.test(f)), files.join(' '));

  const up = await upstream();
  const dns: TestDnsServer = await startDnsServer({
    'contoso.test': [{ TXT: 'v=spf1 include:spf.protection.outlook.com ip4:203.0.113.0/28 -all' }],
    'spf.protection.outlook.com': [{ TXT: 'v=spf1 ip4:40.92.0.0/15 -all' }],
  });
  cleanups.push(() => dns.stop());
  const port = await freePort();
  const webPort = await freePort();
  writeFileSync(path.join(root, 'etc/smarthost/smarthost.yaml'), [
    'mailroot: /var/spool/smarthost',
    `listen: [{ address: 127.0.0.1, port: ${port}, tls: none }]`,
    `web: { enabled: true, address: 127.0.0.1, port: ${webPort} }`,
    `upstreams: [{ name: loopback, url: "smtp://127.0.0.1:${up.port}" }]`,
    '',
  ].join('\n'));
  writeFileSync(path.join(root, 'etc/smarthost/bad.yaml'), 'listen:\n  - { address: 127.0.0.1, port: 99999 }\n');
  // env -i: no PATH at all; chroot: no Node in the tree
  const inRoot = (...args: string[]) => run('/usr/sbin/chroot', [root, '/smarthost', ...args], { env: {} });

  const version = await inRoot('--version');
  assert.equal(version.code, 0, version.stderr);
  assert.equal(version.stdout.trim(), JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version);

  const good = await inRoot('config', 'check', '/etc/smarthost/smarthost.yaml');
  assert.equal(good.code, 0, good.stderr);
  assert.match(good.stdout, /smarthost\.yaml: OK \(1 listener\(s\), 1 upstream\(s\), mailroot \/var\/spool\/smarthost\)/);
  const bad = await inRoot('config', 'check', '/etc/smarthost/bad.yaml');
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /\/etc\/smarthost\/bad\.yaml:2:\d+: listen\.0\.port: /);

  const R = ['--resolver', `127.0.0.1:${dns.port}`, '--timeout', '2000'];
  const pass = await inRoot('spf', 'check', '40.92.1.2', 'contoso.test', ...R);
  assert.equal(pass.code, 0, pass.stdout + pass.stderr);
  assert.match(pass.stdout, /→ PASS/);
  const fail = await inRoot('spf', 'check', '198.51.100.7', 'contoso.test', '--json', ...R);
  assert.equal(fail.code, 1, fail.stdout + fail.stderr);
  assert.equal(JSON.parse(fail.stdout).result, 'fail');

  const relay = await serveWith('/usr/sbin/chroot', [root, '/smarthost', 'serve', '--config', '/etc/smarthost/smarthost.yaml'], { SMARTHOST_LOG_FORMAT: 'json' }, [port, webPort]);
  // the console's files come from inside the binary, byte for byte, with their types
  for (const [url, file, type] of [['/', 'index.html', 'text/html'], ['/ui/app.js', 'app.js', 'application/javascript'], ['/ui/style.css', 'style.css', 'text/css']]) {
    const res = await fetch(`http://127.0.0.1:${webPort}${url}`);
    assert.equal(res.status, 200, url);
    assert.match(res.headers.get('content-type') ?? '', new RegExp(`^${type}`));
    assert.match(res.headers.get('content-security-policy') ?? '', /default-src 'none'/);
    assert.equal(await res.text(), readFileSync(path.join(ROOT, 'src/web/ui', file), 'utf8'), url);
  }
  assert.equal((await fetch(`http://127.0.0.1:${webPort}/ui/missing.js`)).status, 404);
  const sent = await swaks(port, 'from swaks');
  assert.equal(sent.code, 0, sent.stdout + sent.stderr);
  // the binary as a client too (send), through itself
  const viaSend = await inRoot('send', '--config', '/etc/smarthost/smarthost.yaml', '--from', 'scanner@contoso.test', '--to', 'other@example.com', '--subject', 'from smarthost send');
  assert.equal(viaSend.code, 0, viaSend.stdout + viaSend.stderr);
  const got = await up.waitFor(2, 60_000);
  const subjects = got.map((m) => /^Subject: (.*)$/m.exec(m.raw.toString())?.[1]?.trim()).sort();
  assert.deepEqual(subjects, ['from smarthost send', 'from swaks']);
  // delivered through the SMTP delivery thread and recorded by the history worker: both run from
  // code embedded in the binary (src/core/embedded.ts)
  const log = relay.output();
  assert.match(log, /"upstream":"loopback".*: delivered 250 /);
  // diagnostics: doctor reaches the upstream (EHLO, nothing sent); headers reads a message file
  const doctor = await inRoot('doctor', '--config', '/etc/smarthost/smarthost.yaml', '--no-clock', '--json', ...R);
  assert.notEqual(doctor.code, 2, doctor.stdout + doctor.stderr);
  const upstreamItem = (JSON.parse(doctor.stdout) as { items: Array<{ area: string; state: string; detail: string }> }).items.find((i) => i.area === 'upstream');
  assert.equal(upstreamItem?.state, 'ok', doctor.stdout);
  copyFileSync(path.join(ROOT, 'test/fixtures/headers/m365-clean.eml'), path.join(root, 'etc/smarthost/clean.eml'));
  const headers = await inRoot('headers', '/etc/smarthost/clean.eml');
  assert.equal(headers.code, 0, headers.stdout + headers.stderr);
  assert.match(headers.stdout, /Hops \(oldest first\): \d/);
  const queue = await inRoot('queue', 'list', '--config', '/etc/smarthost/smarthost.yaml', '--json');
  assert.equal(queue.code, 0, queue.stderr);
  assert.deepEqual(JSON.parse(queue.stdout), []);
  await relay.stop();
  assert.ok(existsSync(path.join(root, 'var/spool/smarthost/history.sqlite')), 'the history worker wrote its database');

  // On a terminal the log is formatted for people (pino-pretty, which normally runs in a worker
  // loaded from node_modules: core/logger.ts formats in-process in the binary). `script` gives a pty.
  const ttyPort = await freePort();
  writeFileSync(path.join(root, 'etc/smarthost/tty.yaml'), `mailroot: /var/spool/smarthost\nlisten: [{ address: 127.0.0.1, port: ${ttyPort}, tls: none }]\nweb: { enabled: false }\n`);
  cleanups.push(() => stopIn(root));
  const tty = await serveWith('/usr/bin/script', ['-qec', `/usr/sbin/chroot ${root} /smarthost serve --config /etc/smarthost/tty.yaml`, '/dev/null'], { TERM: 'dumb' }, [ttyPort]);
  await waitUntil(() => /INFO.*smarthost is running/.test(tty.output()));
  await stopIn(root);
  await tty.stop();
  assert.doesNotMatch(tty.output(), /Cannot find module|"level":/);
});

test('container image: built FROM scratch with buildah from the Dockerfile, run as it says (read-only root, user 65534, config from SMARTHOST_* only); relays, and its HEALTHCHECK tells healthy from gone', { timeout: 300_000 }, async (t) => {
  if (!isRoot) return t.skip('needs root for a mount namespace and chroot');
  if (!needTool(t, '/usr/bin/buildah', 'buildah')) return;
  // The Dockerfile's last stages, offline: --build-context puts this run's root file system where
  // the "rootfs" stage would be, so the node:24 build stage (a registry pull) is skipped.
  const rootfsDir = await rootfs('rootfs');
  const storage = ['--root', path.join(work, 'buildah/root'), '--runroot', path.join(work, 'buildah/run'), '--storage-driver', 'vfs'];
  const buildah = async (...args: string[]) => {
    const r = await run('/usr/bin/buildah', [...storage, ...args], { timeout: 240_000 });
    assert.equal(r.code, 0, `buildah ${args.join(' ')}: ${r.stderr}`);
    return r.stdout.trim();
  };
  const context = path.join(work, 'context');
  mkdirSync(context);
  await buildah('bud', '--quiet', '--format', 'docker', '--build-context', `rootfs=${rootfsDir}`, '-f', path.join(ROOT, 'Dockerfile'), '-t', 'smarthost-e2e', context);
  const config = (JSON.parse(await buildah('inspect', '--type', 'image', 'smarthost-e2e')) as { Docker: { config: ImageConfig } }).Docker.config;
  const container = await buildah('from', '--quiet', 'smarthost-e2e');
  const image = await buildah('mount', container);
  cleanups.push(async () => {
    await run('/usr/bin/buildah', [...storage, 'umount', container]);
    await run('/usr/bin/buildah', [...storage, 'rm', container]);
    await run('/usr/bin/buildah', [...storage, 'rmi', '-f', 'smarthost-e2e']);
  });
  // the image's contract, as the Dockerfile states it
  assert.equal(config.User, '65534:65534');
  assert.deepEqual(Object.keys(config.Volumes ?? {}).sort(), ['/etc/smarthost', '/var/spool/smarthost']);
  assert.deepEqual(config.Healthcheck?.Test, ['CMD', '/smarthost', 'health']);
  const imageEnv = Object.fromEntries(config.Env.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
  assert.equal(imageEnv.SMARTHOST_MAILROOT, '/var/spool/smarthost');
  assert.deepEqual(readdirSync(image).sort(), ['dev', 'etc', 'lib', 'lib64', 'proc', 'smarthost', 'sys', 'tmp', 'var']);

  const spool = path.join(work, 'vol-spool');
  const etc = path.join(work, 'vol-etc');
  for (const d of [spool, etc]) {
    mkdirSync(d);
    chownSync(d, 65534, 65534);
  }
  const up = await upstream();
  const port = await freePort();
  const webPort = await freePort();
  // what `docker run -e …` adds to the image's environment: no file in the config volume. The
  // ports differ from the image's (2525, 8025) only because this test shares the host's network.
  const env = {
    ...imageEnv,
    SMARTHOST_LISTEN: `0.0.0.0:${port}/none`,
    SMARTHOST_WEB_LISTEN: `127.0.0.1:${webPort}`,
    SMARTHOST_UPSTREAM_URL: `smtp://127.0.0.1:${up.port}`,
    SMARTHOST_RELAY_LIST: '127.0.0.1',
    SMARTHOST_LOG_FORMAT: 'json',
  };
  const asImage = (argv: string[]) => ['-m', '--propagation', 'private', 'bash', path.join(ROOT, 'test/helpers/run-as-image.sh'), image, spool, etc, config.User, config.WorkingDir, ...argv];
  const relay = await serveWith('/usr/bin/unshare', asImage([...config.Entrypoint, ...config.Cmd]), env, [port, webPort]);
  const pid = relay.child.pid!;
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  assert.match(status, /^Uid:\s+65534\s+65534\s+65534\s+65534$/m);
  assert.match(status, /^Gid:\s+65534\s+65534\s+65534\s+65534$/m);
  assert.match(status, /^Groups:\s*$/m);
  assert.match(status, /^CapEff:\s+0+$/m);
  assert.equal(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0], '/smarthost');
  assert.equal(readlinkSync(`/proc/${pid}/cwd`), path.join(image, config.WorkingDir));
  // mount points as the program sees them: / read-only, the two volumes writable
  const mounts = new Map(readFileSync(`/proc/${pid}/mountinfo`, 'utf8').trim().split('\n').map((l) => {
    const f = l.split(' ');
    return [f[4], f[5].split(',')] as const;
  }));
  assert.ok(mounts.get('/')?.includes('ro'), `/ is not read-only: ${mounts.get('/')}`);
  assert.ok(mounts.get('/var/spool/smarthost')?.includes('rw'));
  assert.ok(mounts.get('/etc/smarthost')?.includes('rw'));

  const sent = await swaks(port, 'in the image');
  assert.equal(sent.code, 0, sent.stdout + sent.stderr);
  const [msg] = await up.waitFor(1, 60_000);
  assert.match(msg.raw.toString(), /^Subject: in the image/m);
  assert.deepEqual(readdirSync(etc), [], 'the config volume stays as mounted (nothing written to it)');
  assert.ok(readdirSync(spool).includes('incoming') && readdirSync(spool).includes('history.sqlite'), 'the spool lives in its volume');

  // the image's HEALTHCHECK command, in the container's environment
  const healthArgv = config.Healthcheck!.Test.slice(1);
  const health = await run('/usr/bin/unshare', asImage(healthArgv), { env });
  assert.equal(health.code, 0, health.stdout + health.stderr);
  assert.match(health.stdout, new RegExp(`http://127\\.0\\.0\\.1:${webPort}/healthz: healthy`));
  await relay.stop();
  const gone = await run('/usr/bin/unshare', asImage(healthArgv), { env });
  assert.equal(gone.code, 1, gone.stdout + gone.stderr);
  assert.match(gone.stdout, /no answer \(connect ECONNREFUSED/);
});

test('Linux arm64: an aarch64 ELF that runs --version and config check under qemu-user', { timeout: 300_000 }, async (t) => {
  if (!needTool(t, '/usr/bin/file', 'file')) return;
  const file = await run('/usr/bin/file', ['-b', ARM64]);
  assert.match(file.stdout, /^ELF 64-bit LSB .*ARM aarch64/);
  // the build strips it with the cross binutils when they are there (scripts/test.sh installs them)
  if (canInstall || existsSync('/usr/bin/aarch64-linux-gnu-strip')) assert.match(file.stdout, /, stripped/);
  if (!needTool(t, '/usr/bin/qemu-aarch64-static', 'qemu-user-static')) return;
  if (!needTool(t, '/usr/aarch64-linux-gnu/lib/libstdc++.so.6', 'libc6-arm64-cross libstdc++6-arm64-cross libgcc-s1-arm64-cross')) return;
  const qemu = (...args: string[]) => run('/usr/bin/qemu-aarch64-static', ['-L', '/usr/aarch64-linux-gnu', ARM64, ...args], { env: {}, cwd: work, timeout: 240_000 });
  const v = await qemu('--version');
  assert.equal(v.code, 0, v.stderr);
  assert.match(v.stdout, /^\d+\.\d+\.\d+\n$/);
  writeFileSync(path.join(work, 'arm-bad.yaml'), 'listen: nope\n');
  const bad = await qemu('config', 'check', path.join(work, 'arm-bad.yaml'));
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /arm-bad\.yaml:1:9: listen: expected array, got "nope"/);
});

test('Windows x64: a PE32+ executable; under wine the test-only Node 22 build runs --version and config check', { timeout: 600_000 }, async (t) => {
  if (!needTool(t, '/usr/bin/file', 'file')) return;
  for (const exe of [WIN, WIN_TEST]) assert.match((await run('/usr/bin/file', ['-b', exe])).stdout, /^PE32\+ executable \(console\) x86-64, for MS Windows/);
  const wine = '/usr/lib/wine/wine64';
  if (!needTool(t, wine, 'wine wine64')) return;
  const prefix = path.join(work, 'wineprefix');
  // O365_PASSWORD: config check refuses an unset secret, as serve does
  const env = { PATH: '/usr/bin:/bin', HOME: work, WINEPREFIX: prefix, WINEDEBUG: '-all', O365_PASSWORD: 'not-used' };
  // Under wine, Node's stdout/stderr cannot be pipes (EBADF): they go to files.
  const underWine = async (...args: string[]): Promise<Ran> => {
    const out = path.join(work, 'wine.out');
    const errFile = path.join(work, 'wine.err');
    const o = openSync(out, 'w');
    const e = openSync(errFile, 'w');
    const code = await new Promise<number>((resolve) => {
      const child = spawn(wine, args, { env, cwd: work, stdio: ['ignore', o, e] });
      child.once('exit', (c) => resolve(c ?? 1));
    });
    closeSync(o);
    closeSync(e);
    return { code, stdout: readFileSync(out, 'utf8'), stderr: readFileSync(errFile, 'utf8') };
  };
  // wine 8.0 reports Windows 7 and Node refuses to start there (exit 216) until it says Windows 10
  const reg = await underWine('reg', 'add', 'HKCU\\Software\\Wine', '/v', 'Version', '/t', 'REG_SZ', '/d', 'win10', '/f');
  assert.equal(reg.code, 0, reg.stderr);
  const v = await underWine(WIN_TEST, '--version');
  assert.equal(v.code, 0, v.stdout + v.stderr);
  assert.match(v.stdout, /^\d+\.\d+\.\d+\r?\n$/);
  writeFileSync(path.join(work, 'win.yaml'), `listen: [{ address: 127.0.0.1, port: 2525, tls: none }]\nupstreams: [{ name: office365, url: "smtp+starttls://smtp.office365.com:587", username: scanner@contoso.com, password: { env: O365_PASSWORD } }]\n`);
  writeFileSync(path.join(work, 'win-bad.yaml'), 'access:\n  relay: { mode: everyone }\n');
  const good = await underWine(WIN_TEST, 'config', 'check', 'win.yaml');
  assert.equal(good.code, 0, good.stdout + good.stderr);
  assert.match(good.stdout, /win\.yaml: OK \(1 listener\(s\), 1 upstream\(s\), mailroot [A-Z]:\\.*\\mailroot\)/);
  const bad = await underWine(WIN_TEST, 'config', 'check', 'win-bad.yaml');
  assert.equal(bad.code, 2, bad.stdout + bad.stderr);
  assert.match(bad.stderr, /win-bad\.yaml:2:\d+: access\.relay\.mode: expected "only" or "all-except", got "everyone"/);

  // serve under wine: the spool as on Windows (no folder fsync there: docs/queue.md) takes a message
  // with 250 and the delivery thread hands it to the upstream. Output goes to files, as above.
  const up = await upstream();
  const port = await freePort();
  writeFileSync(path.join(work, 'win-serve.yaml'), `listen: [{ address: 127.0.0.1, port: ${port}, tls: none }]\nmailroot: ./win-mailroot\nweb: { enabled: false }\nupstreams: [{ name: sink, url: "smtp://127.0.0.1:${up.port}" }]\n`);
  const serveOut = openSync(path.join(work, 'wine-serve.out'), 'w');
  const serving = spawn(wine, [WIN_TEST, 'serve', '--config', 'win-serve.yaml'], { env, cwd: work, stdio: ['ignore', serveOut, serveOut] });
  cleanups.push(async () => {
    serving.kill('SIGKILL');
    await run('/usr/lib/wine/wineserver', ['-k'], { env });
  });
  closeSync(serveOut);
  await waitPort(port, '127.0.0.1', 120_000);
  const sent = await swaks(port, 'from wine');
  assert.equal(sent.code, 0, sent.stdout + sent.stderr);
  const queuedAs = /250 2\.0\.0 Ok: queued as (\S+)/.exec(sent.stdout)?.[1];
  assert.ok(queuedAs, sent.stdout);
  const [msg] = await up.waitFor(1, 60_000);
  assert.match(msg.raw.toString(), /Subject: from wine/);
  assert.match(msg.raw.toString(), new RegExp(`with ESMTP id ${queuedAs}`));
  const log = readFileSync(path.join(work, 'wine-serve.out'), 'utf8');
  assert.match(log, /mailroot.*[A-Z]:\\\\.*win-mailroot/);
});
