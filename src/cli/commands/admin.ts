/**
 * smarthost dirsync-filter · smarthost imap-csv — the two admin file builders (src/admin/).
 *
 * Both read an input file ("-" for stdin; UTF-8, or UTF-16 with a BOM as Windows tools write it),
 * print a report (or --json), and write the built file to --output (FILE, or "-" for stdout, the
 * report then going to stderr). When the input has
 * errors nothing is written unless --skip-invalid says to write the valid rows anyway, because a
 * silently dropped user means a user synced or a mailbox not migrated.
 * Exit codes: 0 no errors (warnings may be printed), 1 errors found, 2 usage (unreadable input).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { SmarthostError } from '../../core/errors.ts';

async function readInput(file: string): Promise<string> {
  const { decodeExport } = await import('../../admin/csv.ts');
  try {
    return decodeExport(readFileSync(file === '-' ? 0 : file));
  } catch (e) {
    throw new SmarthostError('SH_USAGE', `cannot read ${file === '-' ? 'standard input' : file}: ${(e as Error).message}`);
  }
}

/** Writes the built file, and returns the stream the report should go to. */
function writeOutput(output: string | undefined, content: string, allowed: boolean): { reportTo: NodeJS.WriteStream; written: boolean } {
  if (!output || !allowed) return { reportTo: process.stdout, written: false };
  if (output === '-') {
    process.stdout.write(content);
    return { reportTo: process.stderr, written: true };
  }
  writeFileSync(output, content);
  return { reportTo: process.stdout, written: true };
}

interface Problem {
  line?: number;
  severity: 'error' | 'warning';
  message: string;
}

function problemLines(problems: readonly Problem[]): string[] {
  return problems.map((p) => `  ${p.severity === 'error' ? 'ERROR  ' : 'warning'} ${p.line !== undefined ? `line ${p.line}: ` : ''}${p.message}`);
}

export function register(program: Command): void {
  program
    .command('dirsync-filter')
    .description('build the DirectorySyncFilters XML (users excluded from directory sync) from a CSV or LDIF export')
    .requiredOption('--input <file>', 'CSV with name and objectGUID columns, or an LDIF export with objectGUID:: ("-" for stdin)')
    .option('--format <format>', 'csv, ldif or auto', 'auto')
    .option('--output <file>', 'where to write the XML ("-" for standard output)')
    .option('--skip-invalid', 'write the XML even when some rows are invalid (they are left out)')
    .option('--json', 'print the result as JSON')
    .action(async (opts: { input: string; format: string; output?: string; skipInvalid?: boolean; json?: boolean }) => {
      if (!['csv', 'ldif', 'auto'].includes(opts.format)) throw new SmarthostError('SH_USAGE', `--format must be csv, ldif or auto, not "${opts.format}"`);
      const { buildDirsyncFilter } = await import('../../admin/dirsync.ts');
      const result = buildDirsyncFilter(await readInput(opts.input), opts.format as 'csv' | 'ldif' | 'auto');
      const errors = result.problems.filter((p) => p.severity === 'error').length;
      const { reportTo, written } = writeOutput(opts.output, result.xml, errors === 0 || !!opts.skipInvalid);
      if (opts.json) {
        reportTo.write(`${JSON.stringify({ format: result.format, entries: result.entries, problems: result.problems, written: written ? opts.output : null, xml: result.xml }, null, 2)}\n`);
      } else {
        const lines = [`${result.entries.length} user(s) to exclude, read as ${result.format.toUpperCase()}`, ...problemLines(result.problems)];
        if (written) lines.push(opts.output === '-' ? 'XML written to standard output' : `XML written to ${opts.output}`);
        else if (opts.output) lines.push('XML NOT written: fix the errors above, or use --skip-invalid to leave those rows out');
        else lines.push('', result.xml.trimEnd());
        reportTo.write(`${lines.join('\n')}\n`);
      }
      process.exitCode = errors > 0 ? 1 : 0;
    });

  program
    .command('imap-csv')
    .description('build and validate the CSV for an Exchange Online IMAP migration batch')
    .requiredOption('--input <file>', 'CSV with EmailAddress[, UserName][, Password] columns ("-" for stdin)')
    .option('--server-type <type>', 'exchange, dovecot, mirapoint or generic', 'generic')
    .option('--admin-user <user>', 'log in as this administrator for every mailbox (exchange: DOMAIN/Admin)')
    .option('--admin-password <password>', 'the administrator\'s password (or set SMARTHOST_IMAP_ADMIN_PASSWORD, which stays out of the process list)')
    .option('--stats <file>', 'mailbox statistics CSV (EmailAddress, ItemCount, LargestMessage) to check the 35 MB and 500,000-item limits')
    .option('--output <file>', 'where to write the migration CSV ("-" for standard output)')
    .option('--skip-invalid', 'write the CSV even when some rows are invalid (they are left out)')
    .option('--json', 'print the result as JSON (passwords are never printed)')
    .action(async (opts: { input: string; serverType: string; adminUser?: string; adminPassword?: string; stats?: string; output?: string; skipInvalid?: boolean; json?: boolean }) => {
      if (!['exchange', 'dovecot', 'mirapoint', 'generic'].includes(opts.serverType)) {
        throw new SmarthostError('SH_USAGE', `--server-type must be exchange, dovecot, mirapoint or generic, not "${opts.serverType}"`);
      }
      const { buildImapCsv } = await import('../../admin/imap-csv.ts');
      const adminPassword = opts.adminPassword ?? (opts.adminUser ? process.env.SMARTHOST_IMAP_ADMIN_PASSWORD : undefined);
      const result = buildImapCsv(await readInput(opts.input), { serverType: opts.serverType as 'generic', adminUser: opts.adminUser, adminPassword }, opts.stats ? await readInput(opts.stats) : undefined);
      const errors = result.problems.filter((p) => p.severity === 'error').length;
      const { reportTo, written } = writeOutput(opts.output, result.csv, errors === 0 || !!opts.skipInvalid);
      if (opts.json) {
        const rows = result.rows.map((r) => ({ line: r.line, emailAddress: r.emailAddress, userName: r.userName }));
        reportTo.write(`${JSON.stringify({ serverType: opts.serverType, rows, problems: result.problems, totals: result.totals, written: written ? opts.output : null }, null, 2)}\n`);
      } else {
        const items = result.totals.items !== undefined ? `, ${result.totals.items.toLocaleString('en')} items` : '';
        const lines = [`${result.totals.mailboxes} mailbox(es) for a ${opts.serverType} IMAP source${items}`, ...problemLines(result.problems)];
        if (result.problems.length === 0) lines.push('  no problems found');
        if (written) lines.push(opts.output === '-' ? 'CSV written to standard output' : `CSV written to ${opts.output}`);
        else if (opts.output) lines.push('CSV NOT written: fix the errors above, or use --skip-invalid to leave those rows out');
        reportTo.write(`${lines.join('\n')}\n`);
      }
      process.exitCode = errors > 0 ? 1 : 0;
    });
}
