/**
 * smarthost dns m365 DOMAIN · smarthost dns propagation NAME TYPE
 *
 * Both take --resolver HOST[:PORT] (repeatable) and --json. Exit codes: 0 all good, 1 problems
 * found (a record missing or wrong; a resolver answering differently), 3 could not check (DNS did
 * not answer usably and nothing else was wrong).
 */
import type { Command } from 'commander';
import { SmarthostError } from '../../core/errors.ts';

interface DnsServerOption { host: string; port?: number }

function collect(value: string, previous: DnsServerOption[] = []): DnsServerOption[] {
  const s = value.trim();
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(s);
  const plain = /^([^:]+)(?::(\d+))?$/.exec(s);
  const m = bracket ?? ((s.match(/:/g) ?? []).length > 1 ? [s, s, undefined] : plain);
  if (!m) throw new SmarthostError('SH_USAGE', `--resolver "${value}" is not HOST[:PORT]`);
  const port = m[2] ? Number(m[2]) : 53;
  if (!(port > 0 && port < 65536)) throw new SmarthostError('SH_USAGE', `--resolver "${value}": the port must be 1-65535`);
  return [...previous, { host: m[1], port }];
}

function timeoutOption(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 50 || n > 60_000) throw new SmarthostError('SH_USAGE', '--timeout must be a whole number of milliseconds between 50 and 60000');
  return n;
}

const TYPES = ['A', 'AAAA', 'MX', 'TXT', 'CNAME', 'NS', 'SOA', 'SRV', 'PTR', 'CAA'] as const;

export function register(program: Command): void {
  const dns = program.command('dns').description('DNS checks: Microsoft 365 records, propagation across resolvers');

  dns
    .command('m365')
    .argument('<domain>', 'the custom domain added to Microsoft 365')
    .description('check every DNS record Microsoft 365 asks for: found vs expected, and the fix')
    .option('--tenant-prefix <prefix>', 'the tenant\'s initial domain prefix (contoso for contoso.onmicrosoft.com), for exact DKIM targets')
    .option('--verification <value>', 'the verification TXT value from the admin center (MS=ms12345678)')
    .option('--mx <host>', 'the exact MX value from the admin center')
    .option('--resolver <host[:port]>', 'DNS server to ask (repeatable); default: the system\'s resolvers', collect)
    .option('--timeout <ms>', 'per-query timeout', timeoutOption, 2000)
    .option('--json', 'print the result as JSON')
    .action(async (domain: string, opts: { tenantPrefix?: string; verification?: string; mx?: string; resolver?: DnsServerOption[]; timeout: number; json?: boolean }) => {
      if (opts.verification && !/^MS=ms\d+$/i.test(opts.verification)) throw new SmarthostError('SH_USAGE', `--verification should look like MS=ms12345678, not "${opts.verification}"`);
      const { createDnsClient } = await import('../../diagnostics/dns/client.ts');
      const { checkM365Dns } = await import('../../diagnostics/m365/records.ts');
      const client = createDnsClient({ servers: opts.resolver, timeoutMs: opts.timeout });
      const report = await checkM365Dns(domain, client, { tenantPrefix: opts.tenantPrefix, verification: opts.verification, mx: opts.mx });
      if (opts.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      else {
        const { formatM365Report } = await import('../../diagnostics/m365/report.ts');
        process.stdout.write(formatM365Report(report));
      }
      process.exitCode = report.summary.problems > 0 ? 1 : report.summary.couldNotCheck > 0 ? 3 : 0;
    });

  dns
    .command('propagation')
    .argument('<name>', 'the DNS name to ask about')
    .argument('[type]', `record type: ${TYPES.join(', ')}`, 'A')
    .description('ask several resolvers the same question, side by side, with the TTL each may keep its answer')
    .option('--resolver <host[:port]>', 'resolver to ask (repeatable); default: 1.1.1.1, 8.8.8.8, 9.9.9.9, 208.67.222.222', collect)
    .option('--expect <value>', 'the value the record should have now; answers without it are flagged')
    .option('--timeout <ms>', 'per-query timeout', timeoutOption, 2000)
    .option('--json', 'print the result as JSON')
    .action(async (name: string, typeArg: string, opts: { resolver?: DnsServerOption[]; expect?: string; timeout: number; json?: boolean }) => {
      const type = typeArg.toUpperCase();
      if (!(TYPES as readonly string[]).includes(type)) throw new SmarthostError('SH_USAGE', `record type must be one of ${TYPES.join(', ')}, not "${typeArg}"`);
      const { checkPropagation, formatPropagationReport } = await import('../../diagnostics/m365/propagation.ts');
      const report = await checkPropagation(name, type as (typeof TYPES)[number], {
        resolvers: opts.resolver?.map((server) => ({ server })),
        expect: opts.expect,
        timeoutMs: opts.timeout,
      });
      process.stdout.write(opts.json ? `${JSON.stringify(report, null, 2)}\n` : formatPropagationReport(report));
      const { differing, couldNotCheck, total } = report.summary;
      const noMajority = !opts.expect && report.majority === undefined && couldNotCheck < total;
      process.exitCode = differing > 0 || noMajority ? 1 : couldNotCheck > 0 ? 3 : 0;
    });
}
