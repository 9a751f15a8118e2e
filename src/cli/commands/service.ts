/**
 * smarthost service install | uninstall [--config FILE] [--dry-run] · service status — run smarthost as a
 * systemd service (Linux) or a Windows service (WinSW). --dry-run prints every file in full and
 * every command, in order, and changes nothing.
 */
import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { SmarthostError } from '../../core/errors.ts';

interface Opts {
  config?: string;
  dryRun?: boolean;
}

async function context(program: Command) {
  const { currentLauncher } = await import('../../service/index.ts');
  if (process.platform !== 'linux' && process.platform !== 'win32') {
    throw new SmarthostError('SH_USAGE', `smarthost service supports Linux (systemd) and Windows; this is ${process.platform}`);
  }
  return { platform: process.platform, env: process.env, launcher: currentLauncher(), version: program.version() ?? 'unknown' } as const;
}

async function carryOut(program: Command, action: 'install' | 'uninstall', opts: Opts): Promise<void> {
  const svc = await import('../../service/index.ts');
  const ctx = await context(program);
  const plan = action === 'install' ? svc.planInstall(ctx, opts.config) : svc.planUninstall(ctx, opts.config);
  // sd_booted(3): systemd is the init system when /run/systemd/system exists. Without it (a
  // container, WSL without systemd) install would write files and then fail at systemctl.
  const noSystemd = ctx.platform === 'linux' && !existsSync('/run/systemd/system')
    ? 'systemd is not running on this machine (no /run/systemd/system), so it cannot run a service; in a container, run `smarthost serve` as the container\'s command instead'
    : undefined;
  if (opts.dryRun) {
    process.stdout.write(svc.describePlan(plan));
    if (noSystemd) process.stdout.write(`\nNote: without --dry-run this is refused here: ${noSystemd}.\n`);
    if (plan.problems.length) process.exitCode = 1;
    return;
  }
  if (noSystemd) throw new SmarthostError('SH_USAGE', `service ${action} refused, nothing was changed: ${noSystemd}`);
  if (plan.problems.length) throw new SmarthostError('SH_USAGE', `service ${action} refused, nothing was changed:\n  ${plan.problems.join('\n  ')}`);
  if (ctx.platform === 'linux' && process.getuid?.() !== 0) {
    throw new SmarthostError('SH_USAGE', `service ${action} writes to /etc and runs systemctl: run it as root (sudo smarthost service ${action}), or add --dry-run to see what it would do`);
  }
  try {
    await svc.applyPlan(plan, { runner: svc.spawnRunner, progress: (line) => process.stdout.write(`${line}\n`) });
  } catch (err) {
    // The steps printed above were done; every step is safe to repeat (a config is only written when missing).
    throw new SmarthostError('SH_USAGE', `service ${action} stopped: ${(err as Error).message}\n  The steps listed above were done; fix the cause and run the same command again.`, { cause: err });
  }
  process.stdout.write(`${plan.notes.map((n) => `Note: ${n}`).join('\n')}\n`);
  if (action === 'install') {
    const status = await svc.serviceStatus(ctx, svc.spawnRunner);
    process.stdout.write(`${status.text}\n`);
    if (!status.running) process.exitCode = 1;
  }
}

export function register(program: Command): void {
  const service = program.command('service').description('install smarthost as a service (systemd on Linux, a Windows service), remove it, or show its state');
  service
    .command('install')
    .option('--config <file>', 'config file the service runs with (default /etc/smarthost/smarthost.yaml; %ProgramData%\\smarthost\\smarthost.yaml on Windows); a starter config is written if it does not exist')
    .option('--dry-run', 'print every file it would write and every command it would run; change nothing')
    .description('install and start the service: own user, port 25 with one capability, sandboxed (Linux); WinSW wrapper (Windows)')
    .action((opts: Opts) => carryOut(program, 'install', opts));
  service
    .command('uninstall')
    .option('--config <file>', 'the config file the service was installed with (named in the final note)')
    .option('--dry-run', 'print every file it would remove and every command it would run; change nothing')
    .description('stop and remove the service; the config file and the spool are kept')
    .action((opts: Opts) => carryOut(program, 'uninstall', opts));
  service
    .command('status')
    .description('is the service installed, running, starting at boot? (exit 0 only when running)')
    .action(async () => {
      const svc = await import('../../service/index.ts');
      const status = await svc.serviceStatus(await context(program), svc.spawnRunner);
      process.stdout.write(`${status.text}\n${status.detail ? `\n${status.detail}\n` : ''}`);
      if (!status.running) process.exitCode = 1;
    });
}
