/**
 * The smarthost command table. Each command lives in src/cli/commands/<name>.ts and exports
 * `register(program)`, which declares its options and imports its library lazily in the action.
 * One catch turns every error into a readable message and an exit code:
 *   0 all good · 1 problems found / operation failed · 2 usage or config error · 3 could not check.
 */
import { Command, CommanderError } from 'commander';
import { SmarthostError, exitCodeFor } from '../core/errors.ts';

const COMMAND_MODULES = [
  './commands/serve.ts',
  './commands/send.ts',
  './commands/queue.ts',
  './commands/config.ts',
  './commands/users.ts',
  './commands/m365.ts',
  './commands/spf.ts',
  './commands/dns.ts',
  './commands/headers.ts',
  './commands/doctor.ts',
  './commands/status.ts',
  './commands/admin.ts',
  './commands/import-iis.ts',
  './commands/service.ts',
  './commands/health.ts',
  './commands/route.ts',
  './commands/upstream.ts',
];

export async function buildProgram(): Promise<Command> {
  const program = new Command('smarthost')
    .description('SMTP relay for printers, scanners and old software, to Microsoft 365 or any smart host')
    .version('0.1.0')
    .showHelpAfterError()
    .exitOverride();
  for (const mod of COMMAND_MODULES) {
    const { register } = (await import(mod)) as { register: (p: Command) => void };
    register(program);
  }
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = await buildProgram();
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      return err.exitCode === 0 ? 0 : 2;
    }
    if (err instanceof SmarthostError) {
      process.stderr.write(`smarthost: ${err.toString()}\n`);
    } else {
      process.stderr.write(`smarthost: ${(err as Error)?.stack ?? String(err)}\n`);
    }
    return exitCodeFor(err);
  }
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('smarthost.js') || process.argv[1]?.endsWith('smarthost')) {
  const code = await main(process.argv);
  // serve keeps running: it sets its own lifetime; other commands exit with their code.
  if (code !== 0 || !(globalThis as { __smarthostServing?: boolean }).__smarthostServing) process.exit(code);
}
