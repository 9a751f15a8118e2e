/** smarthost serve [--config FILE] — run the relay (embedded defaults when no file is given). */
import type { Command } from 'commander';

export function register(program: Command): void {
  program
    .command('serve')
    .description('run the relay: SMTP listener, pickup folder, queue, delivery and web console')
    .option('-c, --config <file>', 'YAML config file (default: SMARTHOST_CONFIG, else /etc/smarthost/smarthost.yaml, else ./smarthost.yaml; none: the embedded defaults)')
    .action(async (opts: { config?: string }) => {
      const { serve } = await import('../serve.ts');
      const { findConfig } = await import('../../config/locate.ts');
      // With no config anywhere the relay still starts, on the embedded defaults (the first run
      // of a new install); it logs the places it looked and where its spool is.
      const found = findConfig(opts.config);
      await serve(found.file, found.file ? undefined : { triedConfigs: found.tried });
    });
}
