/**
 * `smarthost service install | uninstall | status`: plans for this machine (where the config, the
 * spool and the binary are), handed to plan.ts to print (--dry-run) or carry out.
 * The platform, the environment, the file probe and the command runner are parameters, so the
 * Linux tests cover the Windows plan too and no test needs a running service manager.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { loadConfig } from '../config/load.ts';
import { sampleConfig } from '../config/sample.ts';
import { seaAsset, type Launcher } from './launcher.ts';
import { SEA_PREFIX, type Runner, type ServicePlan } from './plan.ts';
import { LINUX_CONFIG, LINUX_MAILROOT, UNIT_NAME, UNIT_PATH, configOfUnit, describeLinuxState, linuxInstallPlan, linuxUninstallPlan } from './systemd.ts';
import { WRAPPER_NAME, describeWindowsState, windowsDataDir, windowsInstallPlan, windowsUninstallPlan } from './windows.ts';

export { applyPlan, describePlan, spawnRunner, type Runner, type ServicePlan } from './plan.ts';
export { currentLauncher } from './launcher.ts';

export interface ServiceContext {
  platform: 'linux' | 'win32';
  env: Record<string, string | undefined>;
  launcher: Launcher;
  version: string;
  /** Prefix for every file looked at or written (tests); '' on a real machine. */
  root?: string;
  /** winsw.exe to install on Windows; found next to the executable or in node-windows by default. */
  wrapperSource?: string | null;
}

interface Where {
  configFile: string;
  configExists: boolean;
  mailroot: string;
}

function pathOf(ctx: ServiceContext) {
  return ctx.platform === 'win32' ? path.win32 : path.posix;
}

/** The probe sees files under the test root; Windows paths exist only on Windows. */
function exists(ctx: ServiceContext, file: string): boolean {
  if (ctx.platform !== process.platform) return false;
  return existsSync(ctx.root ? path.join(ctx.root, file) : file);
}

/** --config, then SMARTHOST_CONFIG, then the platform's standard place; always absolute. */
function where(ctx: ServiceContext, configOption: string | undefined, lenient = false): Where {
  const p = pathOf(ctx);
  const dataDir = windowsDataDir(ctx.env);
  const wanted = configOption ?? ctx.env.SMARTHOST_CONFIG ?? (ctx.platform === 'win32' ? p.join(dataDir, 'smarthost.yaml') : LINUX_CONFIG);
  const configFile = p.resolve(wanted);
  const configExists = exists(ctx, configFile);
  let mailroot = ctx.platform === 'win32' ? p.join(dataDir, 'mailroot') : LINUX_MAILROOT;
  if (configExists) {
    // The existing config decides where the spool is; a config with errors stops the install here.
    try {
      const cfg = loadConfig(ctx.root ? path.join(ctx.root, configFile) : configFile);
      mailroot = ctx.root ? path.join('/', path.relative(ctx.root, cfg.mailrootPath)) : cfg.mailrootPath;
    } catch (err) {
      if (!lenient) throw err; // uninstall still works with a broken config; it only names the spool
    }
  }
  return { configFile, configExists, mailroot };
}

/**
 * The starter config: the annotated sample (every key, its default, its help) with the spool in the
 * service's place and the listener on port 25 of every address. Relaying stays loopback-only
 * until the admin lists the devices: a fresh install is never an open relay.
 */
export function starterConfig(mailroot: string, reload: string): string {
  let changed = 0;
  const text = sampleConfig()
    .replace(/^mailroot: .*$/m, () => (changed++, `mailroot: ${JSON.stringify(mailroot)}`))
    .replace(/^(\s+)address: 127\.0\.0\.1\n((?:\1#.*\n)*)\1port: 2525$/m, (_, indent: string, help: string) => (changed++, `${indent}address: 0.0.0.0\n${help}${indent}port: 25`));
  if (changed !== 2) throw new Error('the sample config changed shape: update starterConfig()');
  return `# Written by "smarthost service install". Relaying is allowed only from this machine until you
# add your devices to access.relay.list and an upstream under upstreams; then ${reload}.
${text}`;
}

/** winsw.exe: beside a single executable, embedded in it, else the copy node-windows ships. */
function findWrapper(ctx: ServiceContext): string | undefined {
  if (ctx.wrapperSource !== undefined) return ctx.wrapperSource ?? undefined;
  const p = pathOf(ctx);
  const beside = p.join(p.dirname(ctx.launcher.executable), 'winsw.exe');
  if (exists(ctx, beside)) return beside;
  if (ctx.launcher.sea && seaAsset('winsw.exe') && seaAsset('winsw.exe.config')) return `${SEA_PREFIX}winsw.exe`;
  try {
    const pkg = createRequire(import.meta.url).resolve('node-windows/package.json');
    const exe = path.join(path.dirname(pkg), 'bin', 'winsw', 'winsw.exe');
    return existsSync(exe) ? exe : undefined;
  } catch {
    return undefined;
  }
}

function windowsPlaces(ctx: ServiceContext) {
  const dataDir = windowsDataDir(ctx.env);
  // A single executable gets its wrapper beside it; Node + script (npm) put it in the data folder.
  const serviceDir = ctx.launcher.sea ? path.win32.dirname(ctx.launcher.executable) : dataDir;
  return { dataDir, serviceDir, logDir: path.win32.join(dataDir, 'logs') };
}

export function planInstall(ctx: ServiceContext, configOption?: string): ServicePlan {
  const w = where(ctx, configOption);
  if (ctx.platform === 'win32') {
    const places = windowsPlaces(ctx);
    return windowsInstallPlan({
      ...places,
      launcher: ctx.launcher,
      configFile: w.configFile,
      mailroot: w.mailroot,
      workDir: places.dataDir,
      version: ctx.version,
      wrapperSource: findWrapper(ctx),
      starterConfig: w.configExists ? undefined : starterConfig(w.mailroot, 'Restart-Service smarthost'),
    });
  }
  const configDir = path.posix.dirname(w.configFile);
  return linuxInstallPlan({
    launcher: ctx.launcher,
    configFile: w.configFile,
    mailroot: w.mailroot,
    version: ctx.version,
    // Never make a shared folder such as /etc writable: only a folder of smarthost's own.
    ownConfigDir: configDir === path.posix.dirname(LINUX_CONFIG) || !exists(ctx, configDir),
    starterConfig: w.configExists ? undefined : starterConfig(w.mailroot, 'systemctl reload smarthost'),
  });
}

export function planUninstall(ctx: ServiceContext, configOption?: string): ServicePlan {
  const w = where(ctx, configOption, true);
  if (ctx.platform === 'win32') return windowsUninstallPlan({ ...windowsPlaces(ctx), configFile: w.configFile, mailroot: w.mailroot });
  return linuxUninstallPlan(w.configFile, w.mailroot);
}

export interface ServiceStatus {
  running: boolean;
  /** The state in words. */
  text: string;
  /** What the service manager said, for the details. */
  detail: string;
}

export async function serviceStatus(ctx: ServiceContext, runner: Runner): Promise<ServiceStatus> {
  if (ctx.platform === 'win32') {
    const exe = path.win32.join(windowsPlaces(ctx).serviceDir, `${WRAPPER_NAME}.exe`);
    const r = await runner([exe, 'status']);
    if (r.code === 127) return { running: false, text: 'smarthost is not installed as a service (no smarthost-service.exe). Install it with: smarthost service install', detail: r.stderr };
    return { ...describeWindowsState(r.stdout), detail: (r.stdout + r.stderr).trim() };
  }
  const active = (await runner(['systemctl', 'is-active', UNIT_NAME])).stdout.trim();
  const enabled = (await runner(['systemctl', 'is-enabled', UNIT_NAME])).stdout.trim();
  const status = await runner(['systemctl', 'status', '--no-pager', '--lines=10', UNIT_NAME]);
  const state = describeLinuxState(active, enabled, exists(ctx, UNIT_PATH));
  // The config the service really uses is the one its unit names.
  const config = exists(ctx, UNIT_PATH) ? configOfUnit(readFileSync(ctx.root ? path.join(ctx.root, UNIT_PATH) : UNIT_PATH, 'utf8')) : undefined;
  return { ...state, text: config ? `${state.text}\nConfig: ${config}` : state.text, detail: (status.stdout + status.stderr).trim() };
}
