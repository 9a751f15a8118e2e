// smarthost service on Linux: the generated unit passes `systemd-analyze verify`, scores at or
// below 2.0 with `systemd-analyze security`, --dry-run prints it all and changes nothing, and
// install/uninstall write the right files with the right modes and run the right commands in order
// (a recording runner: there is no systemd as PID 1 here).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../src/config/load.ts';
import { applyPlan, describePlan, planInstall, planUninstall, serviceStatus, type Runner } from '../../src/service/index.ts';
import { systemdUnit, UNIT_PATH } from '../../src/service/systemd.ts';
import type { Launcher } from '../../src/service/launcher.ts';
import { runCli } from '../helpers/cli.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const launcher: Launcher = { executable: process.execPath, prefix: [path.join(ROOT, 'bin/smarthost.js')], sea: false };
const ctx = (root: string, extra: object = {}) => ({ platform: 'linux' as const, env: {}, launcher, version: '0.1.0', root, ...extra });

function recorder(answers: Record<string, string> = {}): { runner: Runner; calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    runner: async (argv) => {
      calls.push(argv.join(' '));
      return { code: 0, stdout: answers[argv.join(' ')] ?? '', stderr: '' };
    },
  };
}

const temporary: string[] = [];
after(() => temporary.forEach((d) => rmSync(d, { recursive: true, force: true })));

function writeUnit(text: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'sh-unit-'));
  temporary.push(dir);
  const file = path.join(dir, 'smarthost.service');
  writeFileSync(file, text);
  return file;
}

/** "→ Overall exposure level for smarthost.service: 1.5 OK" → 1.5 */
function exposure(unitFile: string): number {
  const r = spawnSync('systemd-analyze', ['security', '--offline=true', '--no-pager', unitFile], { encoding: 'utf8' });
  const m = /Overall exposure level for \S+: (\d+\.\d+)/.exec(r.stdout + r.stderr);
  assert.ok(m, `no exposure figure in: ${r.stdout}${r.stderr}`);
  return Number(m[1]);
}

const unitOpts = { launcher, configFile: '/etc/smarthost/smarthost.yaml', mailroot: '/var/spool/smarthost', version: '0.1.0', ownConfigDir: true };

test('the unit passes systemd-analyze verify (ExecStart names binaries that exist)', () => {
  const file = writeUnit(systemdUnit(unitOpts));
  const r = spawnSync('systemd-analyze', ['verify', file], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /smarthost\.service/, r.stderr);
  // The check can fail: a unit naming a missing binary is refused.
  const bad = writeUnit(systemdUnit({ ...unitOpts, launcher: { executable: '/nonexistent/node', prefix: [], sea: true } }));
  const r2 = spawnSync('systemd-analyze', ['verify', bad], { encoding: 'utf8' });
  assert.notEqual(r2.status, 0);
  assert.match(r2.stderr, /nonexistent/);
});

test('systemd-analyze security scores the unit at or below 2.0 (an unhardened one above it)', () => {
  const text = systemdUnit(unitOpts);
  const score = exposure(writeUnit(text));
  console.log(`exposure of the generated unit: ${score}`);
  assert.ok(score <= 2.0, `exposure ${score} > 2.0`);
  const bare = text.split('\n').filter((l) => !/^(Protect|Private|Restrict|SystemCall|Capability|NoNew|Lock|Remove|DevicePolicy|UMask)/.test(l)).join('\n');
  assert.ok(exposure(writeUnit(bare)) > 5, 'the score must respond to the hardening');
});

test('the unit: one capability, read-only system except spool and config folder, SIGHUP reload, stop timeout over serve\'s own 30 s', () => {
  const text = systemdUnit(unitOpts);
  assert.match(text, /^User=smarthost$/m);
  assert.match(text, /^AmbientCapabilities=CAP_NET_BIND_SERVICE$/m);
  assert.match(text, /^CapabilityBoundingSet=CAP_NET_BIND_SERVICE$/m);
  assert.match(text, /^ProtectSystem=strict$/m);
  assert.match(text, /^ReadWritePaths=\/var\/spool\/smarthost \/etc\/smarthost$/m);
  assert.match(text, /^NoNewPrivileges=yes$/m);
  assert.match(text, /^PrivateTmp=yes$/m);
  assert.match(text, /^Restart=on-failure$/m);
  assert.match(text, /^ExecReload=\/bin\/kill -HUP \$MAINPID$/m);
  assert.doesNotMatch(text, /^MemoryDenyWriteExecute=yes/m); // Node aborts under it
  const stop = Number(/^TimeoutStopSec=(\d+)s$/m.exec(text)?.[1]);
  const serveGivesUp = Number(/setTimeout\(\(\) => process\.exit\(1\), (\d+)_000\)/.exec(readFileSync(path.join(ROOT, 'src/cli/serve.ts'), 'utf8'))?.[1]);
  assert.ok(serveGivesUp > 0 && stop > serveGivesUp, `TimeoutStopSec ${stop} must exceed serve's ${serveGivesUp} s`);
  assert.equal(/^ExecStart=(.*)$/m.exec(text)?.[1], `${process.execPath} ${path.join(ROOT, 'bin/smarthost.js')} serve --config /etc/smarthost/smarthost.yaml`);
  // A config in a shared folder: that folder stays read-only.
  const shared = systemdUnit({ ...unitOpts, configFile: '/etc/smarthost.yaml', ownConfigDir: false });
  assert.match(shared, /^ReadWritePaths=\/var\/spool\/smarthost$/m);
});

test('install into a temporary root: files, modes, commands in order; the starter config passes config check', async () => {
  const root = mkdtempSync(path.join(tmpdir(), 'sh-root-'));
  const rec = recorder({ 'systemctl is-active smarthost.service': 'active\n', 'systemctl is-enabled smarthost.service': 'enabled\n' });
  await applyPlan(planInstall(ctx(root)), { runner: rec.runner, root });
  assert.deepEqual(rec.calls, [
    'systemd-sysusers /etc/sysusers.d/smarthost.conf',
    'chown root:smarthost /etc/smarthost',
    'chown root:smarthost /etc/smarthost/smarthost.yaml',
    'chown -R smarthost:smarthost /var/spool/smarthost',
    'systemctl daemon-reload',
    'systemctl enable --now smarthost.service',
  ]);
  const mode = (p: string) => (statSync(path.join(root, p)).mode & 0o7777).toString(8);
  assert.equal(mode('/etc/smarthost'), '770');
  assert.equal(mode('/etc/smarthost/smarthost.yaml'), '640');
  assert.equal(mode('/var/spool/smarthost'), '750');
  assert.equal(mode(UNIT_PATH), '644');
  assert.equal(readFileSync(path.join(root, UNIT_PATH), 'utf8'), systemdUnit(unitOpts));
  assert.match(readFileSync(path.join(root, '/etc/sysusers.d/smarthost.conf'), 'utf8'), /^u smarthost - "smarthost SMTP relay" \/var\/spool\/smarthost \/usr\/sbin\/nologin$/m);
  const cfg = loadConfig(path.join(root, '/etc/smarthost/smarthost.yaml'));
  assert.equal(cfg.mailrootPath, '/var/spool/smarthost');
  assert.deepEqual(cfg.listen.map((l) => `${l.address}:${l.port}`), ['0.0.0.0:25']);
  assert.deepEqual(cfg.access.relay, { mode: 'only', list: ['127.0.0.0/8', '::1'] }); // never an open relay
  const status = await serviceStatus(ctx(root), rec.runner);
  assert.equal(status.running, true);
  assert.equal(status.text, 'smarthost is running (starts at boot).\nConfig: /etc/smarthost/smarthost.yaml');

  // A second install keeps the admin's config, and its mailroot decides the spool.
  writeFileSync(path.join(root, '/etc/smarthost/smarthost.yaml'), 'mailroot: /srv/mail\n');
  const again = planInstall(ctx(root));
  assert.equal(again.steps.some((s) => s.kind === 'write' && s.path === '/etc/smarthost/smarthost.yaml'), false);
  assert.match(describePlan(again), /^ReadWritePaths=\/srv\/mail \/etc\/smarthost$/m);
  assert.match(describePlan(again), /chown -R smarthost:smarthost \/srv\/mail/);

  // Uninstall: the unit goes, config and spool stay, and it says so.
  const rec2 = recorder();
  const un = planUninstall(ctx(root));
  await applyPlan(un, { runner: rec2.runner, root });
  assert.deepEqual(rec2.calls, ['systemctl disable --now smarthost.service', 'systemctl daemon-reload', 'systemctl reset-failed smarthost.service']);
  assert.equal(existsSync(path.join(root, UNIT_PATH)), false);
  assert.equal(existsSync(path.join(root, '/etc/smarthost/smarthost.yaml')), true);
  assert.equal(existsSync(path.join(root, '/var/spool/smarthost')), true);
  assert.match(un.notes.join('\n'), /Kept: the config \/etc\/smarthost\/smarthost\.yaml, the spool \/srv\/mail/);
  const gone = await serviceStatus(ctx(root), recorder({ 'systemctl is-active smarthost.service': 'inactive\n' }).runner);
  assert.equal(gone.running, false);
  assert.match(gone.text, /not installed as a service/);
  rmSync(root, { recursive: true, force: true });
});

test('status says failed, stopped and starting in words, and only "active" counts as running', async () => {
  const root = mkdtempSync(path.join(tmpdir(), 'sh-root-'));
  temporary.push(root);
  mkdirSync(path.join(root, '/etc/systemd/system'), { recursive: true });
  writeFileSync(path.join(root, UNIT_PATH), '');
  const ask = (active: string, enabled = 'enabled') => serviceStatus(ctx(root), recorder({ 'systemctl is-active smarthost.service': active, 'systemctl is-enabled smarthost.service': enabled }).runner);
  assert.deepEqual(await ask('failed'), { running: false, text: 'smarthost has FAILED and is not running (starts at boot). Why: journalctl -u smarthost -n 50', detail: '' });
  // The config named is the unit's own, quoting and % escapes undone.
  writeFileSync(path.join(root, UNIT_PATH), systemdUnit({ ...unitOpts, configFile: '/srv/My Relay/100%.yaml' }));
  assert.match(readFileSync(path.join(root, UNIT_PATH), 'utf8'), /^ExecStart=.* --config "\/srv\/My Relay\/100%%\.yaml"$/m);
  assert.equal((await ask('active')).text, 'smarthost is running (starts at boot).\nConfig: /srv/My Relay/100%.yaml');
  assert.match((await ask('inactive', 'disabled')).text, /installed but stopped \(does not start at boot \(disabled\)\)/);
  assert.equal((await ask('activating')).running, false);
  assert.equal((await ask('active')).running, true);
});

test('a binary or config where the sandbox hides it is refused before anything is written', async () => {
  const root = mkdtempSync(path.join(tmpdir(), 'sh-root-'));
  temporary.push(root);
  const plan = planInstall(ctx(root, { launcher: { executable: '/root/.nvm/node', prefix: ['/home/me/smarthost/bin/smarthost.js'], sea: false } }));
  assert.equal(plan.problems.length, 2);
  assert.match(plan.problems[0], /\/root\/\.nvm\/node is under \/root\/, which the service's sandbox .* hides/);
  await assert.rejects(applyPlan(plan, { runner: recorder().runner, root }), /ProtectHome/);
  assert.equal(existsSync(path.join(root, 'etc')), false);
  assert.match(describePlan(plan), /^PROBLEM: /m);
  // A config whose mailroot is a shared system folder: chown -R would hand it over.
  mkdirSync(path.join(root, 'etc/smarthost'), { recursive: true });
  writeFileSync(path.join(root, 'etc/smarthost/smarthost.yaml'), 'mailroot: /var/spool\n');
  assert.match(planInstall(ctx(root)).problems.join(), /the mailroot \/var\/spool is a shared system folder/);
  writeFileSync(path.join(root, 'etc/smarthost/smarthost.yaml'), 'mailroot: /srv\n');
  assert.match(planInstall(ctx(root)).problems.join(), /the mailroot \/srv is a shared system folder/);
});

test('service install --dry-run prints the full unit and every command, and changes nothing', async () => {
  // Not under /tmp: the plan refuses paths the sandbox hides. Nothing is created there.
  const config = `/srv/smarthost-dry-run-${process.pid}/smarthost.yaml`;
  const before = existsSync(UNIT_PATH);
  const r = await runCli(['service', 'install', '--dry-run', '--config', config]);
  // A checkout under /home or /root is refused by the plan (exit 1, PROBLEM printed), still a dry run.
  const hidden = /^\/(home|root|tmp)\//.test(ROOT);
  assert.equal(r.code, hidden ? 1 : 0, r.stderr);
  const unit = systemdUnit({ ...unitOpts, configFile: config, launcher: { ...launcher, executable: execFileSync(process.execPath, ['-p', 'require("fs").realpathSync(process.execPath)'], { encoding: 'utf8' }).trim() }, ownConfigDir: true });
  assert.ok(r.stdout.includes(`----- /etc/systemd/system/smarthost.service -----\n${unit.replace(/\n$/, '')}\n----- end of`), r.stdout);
  const order = ['run: systemd-sysusers', `run: chown root:smarthost ${path.dirname(config)}`, `write ${config} (mode 0640)`, 'run: chown -R smarthost:smarthost /var/spool/smarthost', 'run: systemctl daemon-reload', 'run: systemctl enable --now smarthost.service'];
  const at = order.map((s) => r.stdout.indexOf(s));
  assert.ok(at.every((i, n) => i > 0 && (n === 0 || i > at[n - 1])), `commands missing or out of order: ${JSON.stringify(at)}`);
  assert.match(r.stdout, /dry run: nothing is changed/);
  assert.equal(existsSync(path.dirname(config)), false, 'the dry run created the config folder');
  assert.equal(existsSync(UNIT_PATH), before);
});

test('without systemd as init, service install refuses before writing anything', { skip: existsSync('/run/systemd/system') && 'systemd is running here: the real install would run' }, async () => {
  const config = `/srv/smarthost-refused-${process.pid}/smarthost.yaml`;
  const r = await runCli(['service', 'install', '--config', config]);
  assert.equal(r.code, 2, r.stdout + r.stderr);
  assert.match(r.stderr, /service install refused, nothing was changed: systemd is not running on this machine/);
  assert.equal(r.stdout, '');
  assert.equal(existsSync(path.dirname(config)), false);
  assert.equal(existsSync('/etc/sysusers.d/smarthost.conf'), false);
  const dry = await runCli(['service', 'install', '--dry-run', '--config', config]);
  assert.match(dry.stdout, /Note: without --dry-run this is refused here: systemd is not running/);
});
