/** smarthost config check FILE · config sample · config show [FILE] — validate, document and print a configuration. */
import type { Command } from 'commander';

export function register(program: Command): void {
  const config = program.command('config').description('check or show a configuration file');
  config
    .command('check')
    .argument('[file]', 'YAML config file (default: SMARTHOST_CONFIG, else /etc/smarthost/smarthost.yaml, else ./smarthost.yaml)')
    .description('validate a config file as serve does at start (secrets, certificates, console password, upstreams); errors name the file, line and what is expected')
    .action(async (file?: string) => {
      const { loadConfig } = await import('../../config/load.ts');
      const { requireConfig } = await import('../../config/locate.ts');
      const cfg = loadConfig(requireConfig(file));
      // everything serve refuses at start, in the same words (compose/preflight.ts)
      const { assertStartable } = await import('../compose/preflight.ts');
      await assertStartable(cfg);
      process.stdout.write(`${cfg.source}: OK (${cfg.listen.length} listener(s), ${cfg.upstreams.length} upstream(s), mailroot ${cfg.mailrootPath})\n`);
      // valid, but would not work as meant: said, without failing the check
      const { ndrSenderWarnings, routeNdrWarnings } = await import('../../m365/ndr-sender.ts');
      for (const w of ndrSenderWarnings(cfg.upstreams, cfg.ndr.from, cfg.hostnameResolved)) process.stdout.write(`warning: ${w}\n`);
      for (const w of routeNdrWarnings(cfg.upstreams, cfg.routes, cfg.hostnameResolved)) process.stdout.write(`warning: ${w}\n`);
      const { routingWarnings } = await import('../../routing/index.ts');
      for (const w of routingWarnings(cfg)) process.stdout.write(`warning: ${w}\n`);
      const { sendAsFailoverWarnings } = await import('../../routing/send-as.ts');
      for (const w of sendAsFailoverWarnings(cfg)) process.stdout.write(`warning: ${w}\n`);
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
    .argument('[file]', 'YAML config file (default: SMARTHOST_CONFIG, else /etc/smarthost/smarthost.yaml, else ./smarthost.yaml; none: the embedded defaults)')
    .description('print the effective configuration with every default filled in (secrets masked)')
    .action(async (file?: string) => {
      const { loadConfig } = await import('../../config/load.ts');
      const { findConfig } = await import('../../config/locate.ts');
      const found = findConfig(file);
      // Which file is shown matters as much as its content: say it, on stderr (stdout stays YAML).
      process.stderr.write(found.file ? `# ${found.file}\n` : `# no config file found (looked for ${found.tried.slice(1).join(', ')}): the embedded defaults\n`);
      file = found.file;
      const { maskSecrets } = await import('../../config/mask.ts');
      const YAML = await import('yaml');
      process.stdout.write(YAML.stringify(maskSecrets(loadConfig(file))));
    });
}
