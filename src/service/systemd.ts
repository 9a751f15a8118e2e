/**
 * Linux: smarthost as a hardened systemd service.
 *
 * The relay runs as its own system user `smarthost` with one capability, CAP_NET_BIND_SERVICE
 * (port 25 without root), a read-only view of the system (ProtectSystem=strict) except the mailroot
 * and the config folder (the console's Save writes the config file: a temporary file in the same
 * folder, then a rename), and the usual sandbox. The exposure score `systemd-analyze security`
 * gives this unit is printed in docs/install.md and checked by test/service/systemd.test.ts.
 *
 * Left out on purpose:
 * - MemoryDenyWriteExecute: V8's JIT turns pages from writable to executable; Node aborts at start
 *   under the kernel's equivalent (prctl PR_SET_MDWE) with "Check failed: 12 == errno" in
 *   v8::base::OS::SetPermissions (measured with Node 24 on Linux 6.18). `--jitless` runs, slower.
 * - PrivateUsers: capabilities would then hold only inside a user namespace, not for the host's
 *   port 25.
 * - ProcSubset=pid: libuv reads /proc/meminfo, /proc/stat for os.totalmem()/os.cpus().
 * - SystemCallFilter=~@resources: Node raises its soft open-files limit with setrlimit at start.
 * - AF_NETLINK stays allowed: os.networkInterfaces() reads it, and Fastify calls that (uncaught)
 *   when the console listens on 0.0.0.0, so the relay would not start.
 */
import path from 'node:path';
import type { Launcher } from './launcher.ts';
import type { ServicePlan, Step } from './plan.ts';

export const UNIT_NAME = 'smarthost.service';
export const UNIT_PATH = `/etc/systemd/system/${UNIT_NAME}`;
export const SYSUSERS_PATH = '/etc/sysusers.d/smarthost.conf';
export const SERVICE_USER = 'smarthost';
export const LINUX_CONFIG = '/etc/smarthost/smarthost.yaml';
export const LINUX_MAILROOT = '/var/spool/smarthost';

/**
 * serve stops on SIGTERM by closing the listeners, letting open SMTP sessions and deliveries in
 * flight finish, and gives up by itself after 30 s (src/cli/serve.ts; what is still in active/ is
 * retried at the next start, marked as a possible duplicate). systemd waits longer than that, so
 * it never has to SIGKILL a relay that is still finishing.
 */
export const STOP_TIMEOUT_SEC = 45;

/** One systemd command-line word: quoted when needed; `%` and `$` escaped (systemd.service(5), "Command lines"). */
export function systemdWord(arg: string): string {
  const escaped = arg.replace(/%/g, '%%').replace(/\$/g, '$$$$');
  return /^[\w@+=:,./-]+$/.test(escaped) ? escaped : `"${escaped.replace(/(["\\])/g, '\\$1')}"`;
}

export interface UnitOptions {
  launcher: Launcher;
  configFile: string;
  mailroot: string;
  version: string;
  /** The config folder is smarthost's own (writable, so the console's Save works). */
  ownConfigDir: boolean;
}

/** The unit file's text. */
export function systemdUnit({ launcher, configFile, mailroot, version, ownConfigDir }: UnitOptions): string {
  const exec = [launcher.executable, ...launcher.prefix, 'serve', '--config', configFile].map(systemdWord).join(' ');
  const writable = [...new Set([mailroot, ...(ownConfigDir ? [path.dirname(configFile)] : [])])].map(systemdWord).join(' ');
  return `# smarthost ${version}: written by \`smarthost service install\`; \`smarthost service uninstall\` removes it.
# Local changes: \`systemctl edit smarthost\` (a drop-in survives a reinstall).
[Unit]
Description=smarthost SMTP relay
Documentation=man:systemd.exec(5)
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User=${SERVICE_USER}
Group=${SERVICE_USER}
ExecStart=${exec}
# SIGHUP reloads the config file and the TLS certificate without dropping a connection.
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=5s
# serve finishes open sessions and deliveries on SIGTERM and gives up by itself after 30 s.
TimeoutStopSec=${STOP_TIMEOUT_SEC}s
LimitNOFILE=65536
UMask=0077

# Port 25 without root: this one capability, nothing else.
AmbientCapabilities=CAP_NET_BIND_SERVICE
CapabilityBoundingSet=CAP_NET_BIND_SERVICE
NoNewPrivileges=yes

# The system is read-only except the spool${ownConfigDir ? " and the config folder (the console's Save writes there)" : ''}.
ProtectSystem=strict
PrivateMounts=yes
ReadWritePaths=${writable}
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
DevicePolicy=closed
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
RemoveIPC=yes
LockPersonality=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged
SystemCallErrorNumber=EPERM
# MemoryDenyWriteExecute is not set: Node's JIT needs it off (it aborts at start otherwise).

[Install]
WantedBy=multi-user.target
`;
}

/** The sysusers.d line creating the system user if it is missing (systemd-sysusers is idempotent). */
export function sysusersConfig(mailroot: string): string {
  return `# smarthost's system user: written by \`smarthost service install\`.
u ${SERVICE_USER} - "smarthost SMTP relay" ${mailroot} /usr/sbin/nologin
`;
}

export interface LinuxInstallInput extends UnitOptions {
  /** The starter config to write when configFile does not exist yet (undefined: it exists). */
  starterConfig?: string;
}

/** Folders two levels deep that belong to the system, never to one service. */
const SHARED = new Set(['/var/spool', '/var/lib', '/var/mail', '/var/log', '/var/cache', '/usr/local', '/usr/share', '/usr/lib', '/etc/ssl']);

/** Folders the sandbox hides from the service: a binary there cannot start. */
const HIDDEN = ['/home/', '/root/', '/run/user/', '/tmp/', '/var/tmp/'];

export function linuxInstallPlan(input: LinuxInstallInput): ServicePlan {
  const { configFile, mailroot, starterConfig, launcher } = input;
  const configDir = path.dirname(configFile);
  const problems: string[] = [];
  for (const file of [launcher.executable, ...launcher.prefix, configFile, mailroot]) {
    const dir = HIDDEN.find((h) => `${file}/`.startsWith(h));
    if (dir) {
      problems.push(`${file} is under ${dir}, which the service's sandbox (ProtectHome, PrivateTmp) hides: ` +
        (file === configFile || file === mailroot ? 'choose another path' : 'install smarthost globally (npm install -g) or copy the single executable to /usr/local/bin'));
    }
  }
  // The spool is handed to the service user with chown -R: never a folder shared with the system.
  if (mailroot.split('/').filter(Boolean).length < 2 || SHARED.has(mailroot.replace(/\/+$/, ''))) {
    problems.push(`the mailroot ${mailroot} is a shared system folder; install would give it to the smarthost user (chown -R): set mailroot to a folder of its own, e.g. ${LINUX_MAILROOT}`);
  }
  const steps: Step[] = [
    { kind: 'write', path: SYSUSERS_PATH, mode: 0o644, content: sysusersConfig(mailroot), why: 'declares the smarthost system user' },
    { kind: 'run', argv: ['systemd-sysusers', SYSUSERS_PATH], why: 'creates the smarthost user and group if missing' },
  ];
  const notes: string[] = [];
  if (input.ownConfigDir) {
    // Group-writable so the console's Save can replace the file (a temporary file, then a rename).
    steps.push(
      { kind: 'mkdir', path: configDir, mode: 0o770, why: 'config folder (the console saves the config here)' },
      { kind: 'run', argv: ['chown', `root:${SERVICE_USER}`, configDir], why: 'the relay may replace its config file' },
    );
  } else {
    notes.push(`${configDir} is not smarthost's own folder, so it stays read-only for the relay: the console can show the config but not save it.`);
  }
  if (starterConfig !== undefined) {
    steps.push(
      { kind: 'write', path: configFile, mode: 0o640, content: starterConfig, why: 'a starter config (none exists yet)' },
      { kind: 'run', argv: ['chown', `root:${SERVICE_USER}`, configFile], why: 'readable by the relay, not by other users' },
    );
    notes.push(`${configFile} is a starter config: the relay listens on port 25 and relays only for this machine. Add your devices to access.relay.list and an upstream, then \`systemctl reload smarthost\`.`);
  } else {
    notes.push(`${configFile} exists and is kept as it is; the smarthost user must be able to read it (e.g. chown root:${SERVICE_USER}, chmod 0640).`);
  }
  steps.push(
    { kind: 'mkdir', path: mailroot, mode: 0o750, why: 'the spool (queue, pickup, badmail)' },
    { kind: 'run', argv: ['chown', '-R', `${SERVICE_USER}:${SERVICE_USER}`, mailroot], why: 'the relay owns its spool' },
    { kind: 'write', path: UNIT_PATH, mode: 0o644, content: systemdUnit(input), why: 'the systemd unit' },
    { kind: 'run', argv: ['systemctl', 'daemon-reload'], why: 'systemd reads the new unit' },
    { kind: 'run', argv: ['systemctl', 'enable', '--now', UNIT_NAME], why: 'starts smarthost now and at every boot' },
  );
  notes.push('Logs: journalctl -u smarthost -f · state: smarthost service status · reload the config: systemctl reload smarthost');
  return { platform: 'linux', action: 'install', steps, notes, problems };
}

export function linuxUninstallPlan(configFile: string, mailroot: string): ServicePlan {
  return {
    platform: 'linux',
    action: 'uninstall',
    steps: [
      // Not installed (or already stopped) is not an error for an uninstall.
      { kind: 'run', argv: ['systemctl', 'disable', '--now', UNIT_NAME], why: 'stops smarthost and removes it from the boot', mayFail: true },
      { kind: 'remove', path: UNIT_PATH, why: 'the systemd unit' },
      { kind: 'run', argv: ['systemctl', 'daemon-reload'], why: 'systemd forgets the unit' },
      { kind: 'run', argv: ['systemctl', 'reset-failed', UNIT_NAME], why: 'clears a remembered failure', mayFail: true },
    ],
    notes: [
      `Kept: the config ${configFile}, the spool ${mailroot} (messages still queued stay there; a reinstall picks them up) and the smarthost user (${SYSUSERS_PATH}). Remove them yourself if you no longer need them.`,
    ],
    problems: [],
  };
}

/** The --config of a unit's ExecStart (as systemdWord wrote it). */
export function configOfUnit(unit: string): string | undefined {
  const m = /^ExecStart=.* --config (?:"((?:[^"\\]|\\.)*)"|(\S+))\s*$/m.exec(unit);
  if (!m) return undefined;
  return (m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2]).replace(/%%/g, '%').replace(/\$\$/g, '$');
}

/** `systemctl is-active` answers in one word; this says it in words. */
export function describeLinuxState(active: string, enabled: string, unitInstalled: boolean): { text: string; running: boolean } {
  if (!unitInstalled) return { text: `smarthost is not installed as a service (no ${UNIT_PATH}). Install it with: smarthost service install`, running: false };
  const boot = enabled === 'enabled' ? 'starts at boot' : `does not start at boot (${enabled || 'unknown'})`;
  switch (active) {
    case 'active':
      return { text: `smarthost is running (${boot}).`, running: true };
    case 'reloading':
      return { text: `smarthost is running and reloading its config (${boot}).`, running: true };
    case 'activating':
      return { text: `smarthost is starting, or waiting to be restarted after a failure (${boot}). Why: journalctl -u smarthost -n 50`, running: false };
    case 'deactivating':
      return { text: `smarthost is stopping: finishing open sessions and deliveries (${boot}).`, running: false };
    case 'failed':
      return { text: `smarthost has FAILED and is not running (${boot}). Why: journalctl -u smarthost -n 50`, running: false };
    case 'inactive':
      return { text: `smarthost is installed but stopped (${boot}). Start it: systemctl start smarthost`, running: false };
    default:
      return { text: `smarthost's state is unknown (systemctl says "${active || 'nothing'}"); is systemd running?`, running: false };
  }
}
