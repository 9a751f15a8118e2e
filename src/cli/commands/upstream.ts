/** smarthost upstream release NAME — release a parked upstream (or every upstream of a route) in the running relay. */
import type { Command } from 'commander';
import { existsSync } from 'node:fs';

export function register(program: Command): void {
  const upstream = program.command('upstream').description('upstreams of the running relay');
  upstream
    .command('release')
    .argument('<name>', 'upstream name, or a route name (releases each of its upstreams)')
    .description('use a parked upstream again and retry the messages waiting for it (as the console\'s Release button)')
    .option('--config <file>', 'YAML config file (default ./smarthost.yaml when present)')
    .option('--wait <seconds>', 'how long to wait for the running relay to take the request', (v: string) => Number(v), 15)
    .action(async (name: string, o: { config?: string; wait: number }) => {
      const { loadConfig } = await import('../../config/load.ts');
      const { SmarthostError } = await import('../../core/errors.ts');
      const { mkdirSync, writeFileSync } = await import('node:fs');
      const path = (await import('node:path')).default;
      const config = loadConfig(o.config ?? (existsSync('smarthost.yaml') ? 'smarthost.yaml' : undefined));
      const known = [...config.upstreams.map((u) => u.name), ...config.routes.map((r) => r.name)];
      if (!known.includes(name)) throw new SmarthostError('SH_USAGE', `no upstream or route named "${name}" in ${config.source} (known: ${known.join(', ') || 'none'})`);
      // the running relay reads this folder on every queue scan (delivery.scanInterval) and removes the file
      const dir = path.join(config.mailrootPath, 'control');
      mkdirSync(dir, { recursive: true });
      const file = path.join(dir, `release.${name}`);
      writeFileSync(file, `${new Date().toISOString()}\n`);
      const end = Date.now() + o.wait * 1000;
      while (Date.now() < end && existsSync(file)) await new Promise((r) => setTimeout(r, 100));
      if (existsSync(file)) {
        process.stdout.write(`asked to release ${name}, but no running smarthost with mailroot ${config.mailrootPath} took the request within ${o.wait} s; it will be applied when smarthost next scans its queue\n`);
        process.exitCode = 3;
        return;
      }
      process.stdout.write(`released ${name}: the messages waiting for it are tried again now\n`);
    });
}
