/** smarthost serve [--config FILE] — run the relay (embedded defaults when no file is given). */
import type { Command } from 'commander';
import { existsSync } from 'node:fs';

export function register(program: Command): void {
  program
    .command('serve')
    .description('run the relay: SMTP listener, pickup folder, queue, delivery and web console')
    .option('-c, --config <file>', 'YAML config file (default: ./smarthost.yaml when it exists, else the embedded defaults)')
    .action(async (opts: { config?: string }) => {
      const { serve } = await import('../serve.ts');
      const file = opts.config ?? (existsSync('smarthost.yaml') ? 'smarthost.yaml' : undefined);
      await serve(file);
    });
}
