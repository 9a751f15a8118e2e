/**
 * Windows: smarthost as a real Windows service through WinSW, the service wrapper node-windows
 * ships (bin/winsw/winsw.exe, WinSW 1.17, a .NET Framework program). Node.js itself does not answer
 * the Service Control Manager, so the SCM starts the wrapper, which starts smarthost, restarts it
 * when it fails, stops it with Ctrl+C (Node's SIGINT: serve finishes open sessions and deliveries)
 * and writes smarthost's output to rolling log files. WinSW writes its own start/stop/failure entries
 * to the Application event log under the service's name.
 *
 * The wrapper is copied as smarthost-service.exe with smarthost-service.xml beside it (WinSW reads the
 * XML named like itself), then `smarthost-service.exe install` registers the service (start on
 * boot) and `sc.exe failure` makes the SCM restart the wrapper itself should it ever die.
 * Settings: https://github.com/winsw/winsw/blob/v2.12.0/doc/xmlConfigFile.md (the 1.x elements used
 * here are a subset); sc failure: https://learn.microsoft.com/windows-server/administration/windows-commands/sc-failure
 */
import path from 'node:path';
import type { Launcher } from './launcher.ts';
import { windowsArg, type ServicePlan, type Step } from './plan.ts';
import { STOP_TIMEOUT_SEC } from './systemd.ts';

const win = path.win32;
export const WINDOWS_SERVICE_ID = 'smarthost';
export const WRAPPER_NAME = 'smarthost-service';

/** %ProgramData%\smarthost: config, spool and logs. */
export function windowsDataDir(env: Record<string, string | undefined>): string {
  return win.join(env.ProgramData ?? env.PROGRAMDATA ?? 'C:\\ProgramData', 'smarthost');
}

function xml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}


export interface WinswOptions {
  launcher: Launcher;
  configFile: string;
  logDir: string;
  workDir: string;
  version: string;
}

/** smarthost-service.xml: WinSW's configuration. */
export function winswXml({ launcher, configFile, logDir, workDir, version }: WinswOptions): string {
  const args = [...launcher.prefix, 'serve', '--config', configFile].map(windowsArg).join(' ');
  return `<!-- smarthost ${xml(version)}: written by "smarthost service install"; "smarthost service uninstall" removes the service. -->
<service>
  <id>${WINDOWS_SERVICE_ID}</id>
  <name>smarthost SMTP relay</name>
  <description>SMTP relay for printers, scanners and applications, to Microsoft 365 or any smart host.</description>
  <executable>${xml(launcher.executable)}</executable>
  <arguments>${xml(args)}</arguments>
  <workingdirectory>${xml(workDir)}</workingdirectory>
  <startmode>Automatic</startmode>
  <!-- Stop: Ctrl+C first (serve finishes open sessions and deliveries, 30 s at most), then a kill. -->
  <stoptimeout>${STOP_TIMEOUT_SEC} sec</stoptimeout>
  <!-- Restart when smarthost exits with an error: after 5 s, then every 30 s. -->
  <onfailure action="restart" delay="5 sec"/>
  <onfailure action="restart" delay="30 sec"/>
  <resetfailure>1 hour</resetfailure>
  <!-- smarthost's own output: smarthost-service.out.log / .err.log, 10 MB each, 8 kept. -->
  <logpath>${xml(logDir)}</logpath>
  <log mode="roll-by-size">
    <sizeThreshold>10240</sizeThreshold>
    <keepFiles>8</keepFiles>
  </log>
</service>
`;
}

export interface WindowsInstallInput extends WinswOptions {
  /** Folder receiving smarthost-service.exe and its XML. */
  serviceDir: string;
  /** winsw.exe to copy (undefined: not found). */
  wrapperSource?: string;
  /** The starter config to write when configFile does not exist yet. */
  starterConfig?: string;
  dataDir: string;
  mailroot: string;
}

export function windowsInstallPlan(input: WindowsInstallInput): ServicePlan {
  const exe = win.join(input.serviceDir, `${WRAPPER_NAME}.exe`);
  const problems: string[] = [];
  if (!input.wrapperSource) {
    problems.push('the service wrapper (WinSW, winsw.exe) was not found: it comes with the npm package node-windows (installed with smarthost), or put winsw.exe next to smarthost.exe');
  }
  const source = input.wrapperSource ?? 'winsw.exe';
  const steps: Step[] = [
    { kind: 'mkdir', path: input.dataDir, mode: 0o700, why: 'config, spool and logs' },
    // Only SYSTEM (S-1-5-18) and Administrators (S-1-5-32-544): the config may hold the smart host's
    // password. SIDs, not names, so it works on every Windows language.
    { kind: 'run', argv: ['icacls', input.dataDir, '/inheritance:r', '/grant:r', '*S-1-5-18:(OI)(CI)F', '*S-1-5-32-544:(OI)(CI)F'], why: 'only SYSTEM and Administrators may read it' },
  ];
  const notes: string[] = [];
  if (input.starterConfig !== undefined) {
    steps.push({ kind: 'write', path: input.configFile, mode: 0o600, content: input.starterConfig, why: 'a starter config (none exists yet)' });
    notes.push(`${input.configFile} is a starter config: the relay listens on port 25 and relays only for this machine. Add your devices to access.relay.list and an upstream, then restart the service (Restart-Service smarthost).`);
  } else {
    notes.push(`${input.configFile} exists and is kept as it is.`);
  }
  steps.push(
    { kind: 'mkdir', path: input.mailroot, mode: 0o700, why: 'the spool (queue, pickup, badmail)' },
    { kind: 'copy', from: source, path: exe, mode: 0o755, why: 'the service wrapper (WinSW from node-windows)' },
    // WinSW 1.x is a .NET program: its .exe.config lets it run on .NET 4 (Windows Server 2012 and later).
    { kind: 'copy', from: `${source}.config`, path: `${exe}.config`, mode: 0o644, why: 'lets the wrapper run on .NET Framework 4' },
    { kind: 'write', path: win.join(input.serviceDir, `${WRAPPER_NAME}.xml`), mode: 0o644, content: winswXml(input), why: 'the wrapper\'s settings' },
    { kind: 'run', argv: [exe, 'install'], why: 'registers the Windows service "smarthost" (starts at boot)' },
    { kind: 'run', argv: ['sc.exe', 'failure', WINDOWS_SERVICE_ID, 'reset=', '86400', 'actions=', 'restart/5000/restart/5000/restart/30000'], why: 'the Service Control Manager restarts the wrapper too if it dies' },
    { kind: 'run', argv: [exe, 'start'], why: 'starts smarthost now' },
  );
  notes.push(`Logs: ${input.logDir} (rolling files) and the Application event log (source "${WINDOWS_SERVICE_ID}") · state: smarthost service status`);
  return { platform: 'win32', action: 'install', steps, notes, problems };
}

export function windowsUninstallPlan(input: { serviceDir: string; configFile: string; mailroot: string }): ServicePlan {
  const exe = win.join(input.serviceDir, `${WRAPPER_NAME}.exe`);
  return {
    platform: 'win32',
    action: 'uninstall',
    steps: [
      { kind: 'run', argv: [exe, 'stop'], why: 'stops smarthost (it finishes open sessions and deliveries)', mayFail: true },
      { kind: 'run', argv: [exe, 'uninstall'], why: 'removes the Windows service' },
      { kind: 'remove', path: exe, why: 'the wrapper' },
      { kind: 'remove', path: `${exe}.config`, why: 'the wrapper\'s .NET settings' },
      { kind: 'remove', path: win.join(input.serviceDir, `${WRAPPER_NAME}.xml`), why: 'the wrapper\'s settings' },
    ],
    notes: [`Kept: the config ${input.configFile}, the spool ${input.mailroot} (messages still queued stay there; a reinstall picks them up) and the logs.`],
    problems: [],
  };
}

/** WinSW's `status` answers Started, Stopped or NonExistent; this says it in words. */
export function describeWindowsState(answer: string): { text: string; running: boolean } {
  const word = answer.trim().split(/\s+/).pop() ?? '';
  if (word === 'Started') return { text: 'smarthost is running (starts at boot).', running: true };
  if (word === 'Stopped') return { text: 'smarthost is installed but stopped. Start it: Start-Service smarthost (or smarthost-service.exe start); why it stopped: the Application event log and the log folder.', running: false };
  if (word === 'NonExistent') return { text: 'smarthost is not installed as a service. Install it with: smarthost service install', running: false };
  return { text: `smarthost's state is unknown (the wrapper said "${answer.trim() || 'nothing'}").`, running: false };
}
