/** smarthost config check FILE · config sample · config show [FILE] — validate, document and print a configuration. */
import type { Command } from 'commander';

export function register(program: Command): void {
  const config = program.command('config').description('check or show a configuration file');
  config
    .command('check')
    .argument('[file]', 'YAML config file', 'smarthost.yaml')
    .description('validate a config file as serve does at start (secrets, certificates, console password, upstreams); errors name the file, line and what is expected')
    .action(async (file: string) => {
      const { loadConfig } = await import('../../config/load.ts');
      const cfg = loadConfig(file);
      // everything serve refuses at start, in the same words (compose/preflight.ts)
      const { assertStartable } = await import('../compose/preflight.ts');
      await assertStartable(cfg);
      process.stdout.write(`${cfg.source}: OK (${cfg.listen.length} listener(s), ${cfg.upstreams.length} upstream(s), mailroot ${cfg.mailrootPath})\n`);
    });
  config
    .command('sample')
    .description('print an annotated configuration file with every key, its default and its help')
    .action(async () => {
      const { sampleConfig } = await import('../../config/sample.ts');
      process.stdout.write(sampleConfig());
    });
  config
    .command('show')
    .argument('[file]', 'YAML config file (omit for the embedded defaults)')
    .description('print the effective configuration with every default filled in (secrets masked)')
    .action(async (file?: string) => {
      const { loadConfig } = await import('../../config/load.ts');
      const { maskSecrets } = await import('../../config/mask.ts');
      const YAML = await import('yaml');
      process.stdout.write(YAML.stringify(maskSecrets(loadConfig(file))));
    });
}
