// smarthost service on Windows, planned and carried out on Linux: the platform is a parameter,
// the commands go to a recording runner, the files to a temporary root. WinSW's XML is parsed and
// checked element by element; the wrapper copied is the real winsw.exe from node-windows.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { XMLParser } from 'fast-xml-parser';
import { parse as parseYaml } from 'yaml';
import { checkConfigText } from '../../src/config/load.ts';
import { applyPlan, describePlan, planInstall, planUninstall, serviceStatus, type Runner } from '../../src/service/index.ts';
import { winswXml } from '../../src/service/windows.ts';
import { windowsArg } from '../../src/service/plan.ts';
import type { Launcher } from '../../src/service/launcher.ts';

const sea: Launcher = { executable: 'C:\\Program Files\\smarthost\\smarthost.exe', prefix: [], sea: true };
const npm: Launcher = { executable: 'C:\\Program Files\\nodejs\\node.exe', prefix: ['C:\\Users\\Admin Person\\AppData\\Roaming\\npm\\node_modules\\smarthost\\bin\\smarthost.js'], sea: false };
const env = { ProgramData: 'C:\\ProgramData' };
const ctx = (launcher: Launcher, extra: object = {}) => ({ platform: 'win32' as const, env, launcher, version: '0.1.0', ...extra });

const temporary: string[] = [];
after(() => temporary.forEach((d) => rmSync(d, { recursive: true, force: true })));
function tempRoot(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'sh-win-'));
  temporary.push(dir);
  return dir;
}

function recorder(answers: Record<string, string> = {}): { runner: Runner; calls: string[] } {
  const calls: string[] = [];
  return { calls, runner: async (argv) => (calls.push(argv.join(' ')), { code: 0, stdout: answers[argv.join(' ')] ?? '', stderr: '' }) };
}

function parseWinsw(text: string) {
  return new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '@', isArray: (name) => name === 'onfailure' }).parse(text).service;
}

test('WinSW XML: automatic start, restart on failure, Ctrl+C stop with a timeout, rolling log files', () => {
  const s = parseWinsw(winswXml({ launcher: sea, configFile: 'C:\\ProgramData\\smarthost\\smarthost.yaml', logDir: 'C:\\ProgramData\\smarthost\\logs', workDir: 'C:\\ProgramData\\smarthost', version: '0.1.0' }));
  assert.equal(s.id, 'smarthost');
  assert.equal(s.executable, 'C:\\Program Files\\smarthost\\smarthost.exe');
  assert.equal(s.arguments, 'serve --config C:\\ProgramData\\smarthost\\smarthost.yaml');
  assert.equal(s.startmode, 'Automatic');
  assert.equal(s.stoptimeout, '45 sec');
  assert.deepEqual(s.onfailure.map((f: Record<string, string>) => [f['@action'], f['@delay']]), [['restart', '5 sec'], ['restart', '30 sec']]);
  assert.equal(s.resetfailure, '1 hour');
  assert.equal(s.logpath, 'C:\\ProgramData\\smarthost\\logs');
  assert.equal(s.log['@mode'], 'roll-by-size');
  assert.equal(s.log.sizeThreshold, 10240);
  assert.equal(s.log.keepFiles, 8);
});

test('WinSW XML for Node + script: paths with spaces quoted once, XML-escaped', () => {
  const xml = winswXml({ launcher: npm, configFile: 'C:\\Data & Mail\\smarthost.yaml', logDir: 'C:\\l', workDir: 'C:\\w', version: '0.1.0' });
  assert.match(xml, /<arguments>&quot;C:\\Users\\Admin Person\\AppData\\Roaming\\npm\\node_modules\\smarthost\\bin\\smarthost\.js&quot; serve --config &quot;C:\\Data &amp; Mail\\smarthost\.yaml&quot;<\/arguments>/);
  const s = parseWinsw(xml);
  assert.equal(s.executable, 'C:\\Program Files\\nodejs\\node.exe');
  // CommandLineToArgvW rules: a trailing backslash before the closing quote is doubled.
  assert.equal(windowsArg('C:\\My Dir\\'), '"C:\\My Dir\\\\"');
  assert.equal(windowsArg('say "hi"'), '"say \\"hi\\""');
  assert.equal(windowsArg('plain'), 'plain');
});

test('install: wrapper copied beside the single executable, XML, ACL, install, SCM failure actions, start — in order', async () => {
  const root = mkdtempSync(path.join(tmpdir(), 'sh-win-'));
  const rec = recorder({ 'C:\\Program Files\\smarthost\\smarthost-service.exe status': 'Started\r\n' });
  const plan = planInstall(ctx(sea));
  assert.deepEqual(plan.problems, []);
  await applyPlan(plan, { runner: rec.runner, root });
  assert.deepEqual(rec.calls, [
    'icacls C:\\ProgramData\\smarthost /inheritance:r /grant:r *S-1-5-18:(OI)(CI)F *S-1-5-32-544:(OI)(CI)F',
    'C:\\Program Files\\smarthost\\smarthost-service.exe install',
    'sc.exe failure smarthost reset= 86400 actions= restart/5000/restart/5000/restart/30000',
    'C:\\Program Files\\smarthost\\smarthost-service.exe start',
  ]);
  const at = (p: string) => path.join(root, p);
  // The real wrapper and its .NET 4 config from node-windows.
  const wrapper = readFileSync(at('C:\\Program Files\\smarthost\\smarthost-service.exe'));
  assert.equal(wrapper.subarray(0, 2).toString(), 'MZ');
  assert.match(readFileSync(at('C:\\Program Files\\smarthost\\smarthost-service.exe.config'), 'utf8'), /supportedRuntime version="v4\.0"/);
  const s = parseWinsw(readFileSync(at('C:\\Program Files\\smarthost\\smarthost-service.xml'), 'utf8'));
  assert.equal(s.arguments, 'serve --config C:\\ProgramData\\smarthost\\smarthost.yaml');
  // The starter config is valid and puts the spool under ProgramData.
  const text = readFileSync(at('C:\\ProgramData\\smarthost\\smarthost.yaml'), 'utf8');
  assert.equal((statSync(at('C:\\ProgramData\\smarthost\\smarthost.yaml')).mode & 0o777).toString(8), '600');
  assert.equal(parseYaml(text).mailroot, 'C:\\ProgramData\\smarthost\\mailroot');
  assert.deepEqual(checkConfigText(text, 'smarthost.yaml').errors, []);
  assert.ok(existsSync(at('C:\\ProgramData\\smarthost\\mailroot')));
  const status = await serviceStatus(ctx(sea), rec.runner);
  assert.deepEqual([status.running, status.text], [true, 'smarthost is running (starts at boot).']);
  rmSync(root, { recursive: true, force: true });
});

test('Node + script: the wrapper goes to ProgramData; dry run shows the XML and the commands', () => {
  const text = describePlan(planInstall(ctx(npm)));
  assert.match(text, /\(win32\) — dry run: nothing is changed/);
  assert.match(text, /----- C:\\ProgramData\\smarthost\\smarthost-service\.xml -----\n<!-- smarthost 0\.1\.0/);
  assert.match(text, /<executable>C:\\Program Files\\nodejs\\node\.exe<\/executable>/);
  assert.match(text, /run: C:\\ProgramData\\smarthost\\smarthost-service\.exe install/);
  assert.match(text, /run: icacls C:\\ProgramData\\smarthost \/inheritance:r \/grant:r \*S-1-5-18:\(OI\)\(CI\)F/);
  assert.doesNotMatch(text, /\(mode \d+\)/); // ACLs on Windows, not modes
  const sea = describePlan(planInstall(ctx({ ...npm, executable: 'C:\\Program Files\\smarthost\\smarthost.exe', prefix: [], sea: true })));
  assert.match(sea, /run: "C:\\Program Files\\smarthost\\smarthost-service\.exe" install/); // Windows quoting, not POSIX
  assert.match(text, /run: sc\.exe failure smarthost reset= 86400 actions= restart\/5000\/restart\/5000\/restart\/30000/);
  assert.match(text, /Application event log/);
});

test('no wrapper found: refused with the reason, nothing done', async () => {
  const plan = planInstall(ctx(sea, { wrapperSource: null }));
  assert.match(plan.problems.join(), /WinSW, winsw\.exe\) was not found/);
  const rec = recorder();
  await assert.rejects(applyPlan(plan, { runner: rec.runner, root: tempRoot() }));
  assert.deepEqual(rec.calls, []);
});

test('uninstall stops, removes the service and the wrapper, keeps config and spool; status in words', async () => {
  const plan = planUninstall(ctx(sea));
  const rec = recorder();
  await applyPlan(plan, { runner: rec.runner, root: tempRoot() });
  assert.deepEqual(rec.calls, ['C:\\Program Files\\smarthost\\smarthost-service.exe stop', 'C:\\Program Files\\smarthost\\smarthost-service.exe uninstall']);
  assert.match(plan.notes.join(), /Kept: the config C:\\ProgramData\\smarthost\\smarthost\.yaml, the spool C:\\ProgramData\\smarthost\\mailroot/);
  const ask = async (answer: string) => serviceStatus(ctx(sea), recorder({ 'C:\\Program Files\\smarthost\\smarthost-service.exe status': answer }).runner);
  assert.equal((await ask('Stopped\r\n')).running, false);
  assert.match((await ask('Stopped\r\n')).text, /installed but stopped/);
  assert.match((await ask('NonExistent\r\n')).text, /not installed as a service/);
  assert.match((await ask('')).text, /unknown/);
});
