/**
 * smarthost service install | uninstall [--config FILE] [--dry-run] · service status — run smarthost as a
 * systemd service (Linux) or a Windows service (WinSW). --dry-run prints every file in full and
 * every command, in order, and changes nothing.
 */
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
  if (opts.dryRun) {
    process.stdout.write(svc.describePlan(plan));
    if (plan.problems.length) process.exitCode = 1;
    return;
  }
  if (plan.problems.length) throw new SmarthostError('SH_USAGE', `service ${action} refused, nothing was changed:\n  ${plan.problems.join('\n  ')}`);
  if (ctx.platform === 'linux' && process.getuid?.() !== 0) {
    throw new SmarthostError('SH_USAGE', `service ${action} writes to /etc and runs systemctl: run it as root (sudo smarthost service ${action}), or add --dry-run to see what it would do`);
  }
  try {
    await svc.applyPlan(plan, { runner: svc.spawnRunner, progress: (line) => process.stdout.write(`${line}\n`) });
  } catch (err) {
    throw new SmarthostError('SH_USAGE', `service ${action} stopped: ${(err as Error).message}`, { cause: err });
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
