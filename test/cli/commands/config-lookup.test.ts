// Every command finds the same config (and so the same mailroot) from any folder; without one,
// the commands that need it say where they looked and create nothing in the current folder.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '../../..');
const CLI = path.join(ROOT, 'bin/smarthost.js');

function run(args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const base = { ...process.env };
  delete base.SMARTHOST_CONFIG;
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd, env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
  });
}

test('SMARTHOST_CONFIG: config check, config show and queue list from another folder all use its mailroot', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sh-lookup-'));
  const confDir = path.join(dir, 'conf');
  const elsewhere = path.join(dir, 'elsewhere');
  mkdirSync(confDir);
  mkdirSync(elsewhere);
  const file = path.join(confDir, 'relay.yaml');
  writeFileSync(file, 'mailroot: ./spool\nweb: { enabled: false }\n');
  const env = { SMARTHOST_CONFIG: file };
  const spool = path.join(confDir, 'spool');

  const check = await run(['config', 'check'], elsewhere, env);
  assert.equal(check.code, 0, check.stderr);
  assert.ok(check.stdout.includes(`${file}: OK`) && check.stdout.includes(`mailroot ${spool}`), check.stdout);

  const show = await run(['config', 'show'], elsewhere, env);
  assert.equal(show.code, 0, show.stderr);
  assert.match(show.stdout, new RegExp(`mailrootPath: ${spool}`));
  assert.ok(show.stderr.includes(file), show.stderr);

  const list = await run(['queue', 'list'], elsewhere, env);
  assert.equal(list.code, 0, list.stderr);
  assert.match(list.stdout, /The queue is empty/);
  assert.deepEqual(readdirSync(elsewhere), [], 'nothing is created in the current folder');

  // --config still wins over the environment
  const other = path.join(dir, 'other.yaml');
  writeFileSync(other, 'mailroot: ./other-spool\n');
  const given = await run(['config', 'check', other], elsewhere, env);
  assert.ok(given.stdout.includes(`mailroot ${path.join(dir, 'other-spool')}`), given.stdout);

  // a SMARTHOST_CONFIG naming a missing file is an error, not a silent fall-back
  const missing = await run(['queue', 'list'], elsewhere, { SMARTHOST_CONFIG: path.join(dir, 'nope.yaml') });
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /cannot read config file .*nope\.yaml/);
});

test('./smarthost.yaml in the current folder is found without any option', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sh-lookup-'));
  writeFileSync(path.join(dir, 'smarthost.yaml'), 'mailroot: ./here\n');
  const r = await run(['config', 'check'], dir);
  if (existsSync('/etc/smarthost/smarthost.yaml')) {
    assert.ok(r.stdout.includes('/etc/smarthost/smarthost.yaml'), 'the system file comes first');
    return;
  }
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.stdout.includes(`mailroot ${path.join(dir, 'here')}`), r.stdout);
});

test('no config anywhere: queue, doctor, config check refuse and list the paths tried; no spool appears', async (t) => {
  if (existsSync('/etc/smarthost/smarthost.yaml')) return t.skip('this machine has /etc/smarthost/smarthost.yaml');
  const dir = mkdtempSync(path.join(tmpdir(), 'sh-lookup-'));
  for (const args of [['queue', 'list'], ['doctor', '--no-clock'], ['config', 'check'], ['send', '--from', 'a@example.com', '--to', 'b@example.com', '--upstream', 'x']]) {
    const r = await run(args, dir);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, /no config file found/);
    assert.ok(r.stderr.includes('/etc/smarthost/smarthost.yaml') && r.stderr.includes(path.join(dir, 'smarthost.yaml')) && r.stderr.includes('SMARTHOST_CONFIG'), r.stderr);
  }
  assert.deepEqual(readdirSync(dir), [], 'no mailroot was created in the current folder');
  // config show still shows the embedded defaults, and says that is what they are
  const show = await run(['config', 'show'], dir);
  assert.equal(show.code, 0);
  assert.match(show.stderr, /no config file found .*embedded defaults/);
  assert.deepEqual(readdirSync(dir), []);
});

test('queue list uses ./mailroot left by a serve on the embedded defaults in this folder', async (t) => {
  if (existsSync('/etc/smarthost/smarthost.yaml')) return t.skip('this machine has /etc/smarthost/smarthost.yaml');
  const dir = mkdtempSync(path.join(tmpdir(), 'sh-lookup-'));
  mkdirSync(path.join(dir, 'mailroot'));
  const r = await run(['queue', 'list'], dir);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /using the embedded defaults and the spool in \.\/mailroot/);
  assert.match(r.stdout, /The queue is empty/);
});

test('serve with no config anywhere runs on the embedded defaults and logs where it looked and where its spool is', async (t) => {
  if (existsSync('/etc/smarthost/smarthost.yaml')) return t.skip('this machine has /etc/smarthost/smarthost.yaml');
  // The defaults listen on 127.0.0.1:2525 and :8025: a network namespace of its own keeps them free
  // of any other relay on this machine (root only).
  if (process.getuid?.() !== 0) return t.skip('needs root for a network namespace');
  const dir = mkdtempSync(path.join(tmpdir(), 'sh-lookup-'));
  const base = { ...process.env };
  delete base.SMARTHOST_CONFIG;
  delete base.SMARTHOST_LOG_FORMAT;
  const child = spawn('unshare', ['-n', 'sh', '-c', 'ip link set lo up && exec "$0" "$@"', process.execPath, CLI, 'serve'], { cwd: dir, env: base, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stderr.on('data', (d) => { out += d; });
  const code = await new Promise<number | null>((resolve) => {
    child.stdout.on('data', (d) => {
      out += d;
      if (/smarthost is running/.test(out)) child.kill('SIGTERM');
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('close', (c) => { clearTimeout(timer); resolve(c); });
  });
  assert.match(out, /smarthost is running/, out);
  assert.equal(code, 0, out);
  const warn = out.split('\n').find((l) => l.includes('no config file found'));
  assert.ok(warn, out);
  assert.match(warn, / WARN  no config file found: running on the embedded defaults/);
  assert.ok(warn.includes('/etc/smarthost/smarthost.yaml') && warn.includes(path.join(dir, 'smarthost.yaml')) && warn.includes(`"mailroot":"${path.join(dir, 'mailroot')}"`), warn);
  assert.ok(existsSync(path.join(dir, 'mailroot')), 'the spool is in the folder serve was started from');
});
