/**
 * smarthost import-iis METABASE.xml [--server N] [--out FILE] [--report FILE]
 *
 * Reads an IIS 6 metabase (MetaBase.xml) and writes the equivalent smarthost.yaml (to --out, or
 * standard output) and a report of every property (to --report, or standard error).
 * Exit codes: 0 done, nothing needs the admin · 1 done, but ADMIN items need acting on (e.g. the
 * smart-host password, which the metabase does not give back) · 2 the file cannot be read or
 * used (not XML, no SMTP virtual server, a damaged value, several servers and no --server).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { SmarthostError } from '../../core/errors.ts';

export function register(program: Command): void {
  program
    .command('import-iis')
    .argument('<metabase>', 'MetaBase.xml of the IIS 6 SMTP service (%windir%\\system32\\inetsrv\\MetaBase.xml)')
    .description('turn an IIS 6 SMTP virtual server into a smarthost.yaml, with a report of every property')
    .option('--server <n>', 'the virtual server to import (N of /LM/SmtpSvc/N) when the file has several')
    .option('--out <file>', 'write the config here instead of standard output')
    .option('--report <file>', 'write the report here instead of standard error')
    .action(async (metabase: string, opts: { server?: string; out?: string; report?: string }) => {
      const { importIis, formatReport } = await import('../../migrate/iis.ts');
      let text: string;
      try {
        const raw = readFileSync(metabase);
        // MetaBase.xml is UTF-8; a copy saved by a Windows editor may be UTF-16 with a BOM.
        text = raw[0] === 0xff && raw[1] === 0xfe ? raw.subarray(2).toString('utf16le') : raw.toString('utf8').replace(/^\uFEFF/, '');
      } catch (e) {
        throw new SmarthostError('SH_USAGE', `cannot read ${metabase}: ${(e as Error).message}`);
      }
      const result = importIis(text, metabase, { server: opts.server });
      if (opts.out) writeFileSync(opts.out, result.yaml);
      else process.stdout.write(result.yaml);
      const report = formatReport(result, metabase) + (opts.out ? `Config written to ${opts.out}.\n` : '');
      if (opts.report) writeFileSync(opts.report, report);
      else process.stderr.write(report);
      process.exitCode = result.needsAdmin ? 1 : 0;
    });
}
