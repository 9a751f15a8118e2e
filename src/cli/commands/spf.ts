/**
 * smarthost spf explain|lint|check|build — SPF diagnostics on the admin's own machine.
 * Every subcommand takes --json (stable shape) and --resolver HOST[:PORT] (repeatable; default:
 * the system's resolvers). Exit codes: 0 all good, 1 problems found, 2 usage, 3 could not check
 * (a DNS timeout or SERVFAIL, reported as such).
 */
import type { Command } from 'commander';
import { SmarthostError } from '../../core/errors.ts';
import type { DnsServer } from '../../diagnostics/dns/client.ts';

interface Common { json?: boolean; resolver?: DnsServer[]; timeout: number }

function collectResolver(value: string, previous: DnsServer[] = []): DnsServer[] {
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(value) ?? /^([^:\s]+)(?::(\d+))?$/.exec(value);
  if (!m) throw new SmarthostError('SH_USAGE', `--resolver "${value}" is not HOST[:PORT]`);
  const port = m[2] ? Number(m[2]) : 53;
  if (!(port > 0 && port < 65536)) throw new SmarthostError('SH_USAGE', `--resolver "${value}": the port must be 1-65535`);
  return [...previous, { host: m[1], port }];
}

const collectList = (value: string, previous: string[] = []): string[] => [...previous, ...value.split(',').map((v) => v.trim()).filter(Boolean)];

function common(cmd: Command): Command {
  return cmd
    .option('--resolver <host[:port]>', 'DNS server to ask (repeatable); default: the system\'s resolvers', collectResolver)
    .option('--timeout <ms>', 'per-query DNS timeout in milliseconds', (v) => Number(v), 3000)
    .option('--json', 'print a stable machine-readable report');
}

async function client(opts: Common) {
  const { createDnsClient } = await import('../../diagnostics/dns/client.ts');
  return createDnsClient({ servers: opts.resolver, timeoutMs: opts.timeout });
}

function print(opts: Common, json: unknown, text: string): void {
  process.stdout.write(opts.json ? `${JSON.stringify(json, null, 2)}\n` : `${text}\n`);
}

export function register(program: Command): void {
  const spf = program.command('spf').description('SPF: explain, lint, check and build records');

  common(spf.command('explain').argument('<domain-or-record>', 'a domain, or a record such as "v=spf1 mx -all"'))
    .option('--domain <domain>', 'with a record: the domain publishing it (for bare a/mx/ptr)')
    .description('each term in words, the include tree resolved and the DNS-lookup count')
    .action(async (target: string, opts: Common & { domain?: string }) => {
      const { parseSpfArgument } = await import('../../diagnostics/spf/lint.ts');
      const { explainSpf, renderExplanation } = await import('../../diagnostics/spf/explain.ts');
      const { explainExitCode } = await import('../../diagnostics/spf/report.ts');
      const input = parseSpfArgument(target);
      const e = await explainSpf({ ...input, domain: input.domain ?? opts.domain }, await client(opts));
      print(opts, e, renderExplanation(e));
      process.exitCode = explainExitCode(e);
    });

  common(spf.command('lint').argument('<domain-or-record>', 'a domain, or a record ("v=spf1 …", or quoted strings "…" "…")'))
    .option('--domain <domain>', 'with a record: the domain publishing it (for bare a/mx/ptr)')
    .description('check a record and everything it includes against receivers\' rules and common mistakes')
    .action(async (target: string, opts: Common & { domain?: string }) => {
      const { lintSpf, parseSpfArgument } = await import('../../diagnostics/spf/lint.ts');
      const { lintJson, renderLint, lintExitCode } = await import('../../diagnostics/spf/report.ts');
      const input = parseSpfArgument(target);
      const report = await lintSpf({ ...input, domain: input.domain ?? opts.domain }, await client(opts));
      print(opts, lintJson(report), renderLint(report));
      process.exitCode = lintExitCode(report);
    });

  common(spf.command('check').argument('<ip>', 'the connecting client address').argument('<domain>', 'the sender domain (or HELO name)'))
    .option('--helo <name>', 'the HELO/EHLO name (default: the domain)')
    .option('--sender <address>', 'the MAIL FROM address (default: postmaster@DOMAIN; "" for the null sender)')
    .option('--receiver <name>', 'the receiving host name shown in the header', 'smarthost')
    .description('RFC 7208 check_host(): result, explanation and the Received-SPF header a receiver would add')
    .action(async (ip: string, domain: string, opts: Common & { helo?: string; sender?: string; receiver: string }) => {
      const { default: ipaddr } = await import('ipaddr.js');
      if (!ipaddr.isValid(ip.replace(/%.*$/, ''))) throw new SmarthostError('SH_USAGE', `"${ip}" is not an IP address`);
      const { checkHost } = await import('../../diagnostics/spf/evaluate.ts');
      const { checkJson, renderCheck, checkExitCode } = await import('../../diagnostics/spf/report.ts');
      const sender = opts.sender ?? `postmaster@${domain}`;
      const outcome = await checkHost({ ip, sender, helo: opts.helo ?? domain, receiver: opts.receiver }, await client(opts));
      print(opts, checkJson(outcome), renderCheck(outcome));
      process.exitCode = checkExitCode(outcome);
    });

  common(spf.command('build'))
    .option('--m365', 'Microsoft 365 sends for the domain (include:spf.protection.outlook.com)')
    .option('--a <host>', 'a host whose address sends mail (repeatable, or comma-separated)', collectList)
    .option('--mx <domain>', 'a domain whose MX servers send mail (repeatable)', collectList)
    .option('--ip4 <addr[/len]>', 'an IPv4 address or network, e.g. the relay\'s public address (repeatable)', collectList)
    .option('--ip6 <addr[/len]>', 'an IPv6 address or network (repeatable)', collectList)
    .option('--include <domain>', 'a provider that publishes SPF (repeatable)', collectList)
    .option('--preset-file <file>', 'a file of your own with terms for other providers (one or more per line, # comments)')
    .option('--all <all>', 'what happens to everyone else: -all (reject) or ~all (mark)')
    .option('--merge <domain>', 'merge with the record this domain publishes now')
    .option('--domain <domain>', 'the domain the record is for')
    .description('compose a record from mechanisms and presets, lint it, print the TXT value (asks questions on a terminal)')
    .action(async (opts: Common & { m365?: boolean; a?: string[]; mx?: string[]; ip4?: string[]; ip6?: string[]; include?: string[]; presetFile?: string; all?: string; merge?: string; domain?: string }) => {
      const { buildSpf, parsePresetFile, promptBuildOptions } = await import('../../diagnostics/spf/build.ts');
      const { buildJson, renderBuild, buildExitCode } = await import('../../diagnostics/spf/report.ts');
      const given = opts.m365 || opts.a || opts.mx || opts.ip4 || opts.ip6 || opts.include || opts.presetFile || opts.merge;
      let options = { m365: opts.m365, a: opts.a, mx: opts.mx, ip4: opts.ip4, ip6: opts.ip6, include: opts.include, all: opts.all, merge: opts.merge, domain: opts.domain, presetTerms: [] as string[] };
      if (!given && process.stdin.isTTY && !opts.json) {
        const readline = await import('node:readline/promises');
        const rl = readline.createInterface({ input: process.stdin, output: process.stdout });
        try {
          options = { ...options, ...(await promptBuildOptions(rl)) };
        } catch (err) {
          // Ctrl+C / Ctrl+D at a question: stop quietly, nothing was built
          if ((err as Error)?.name === 'AbortError') throw new SmarthostError('SH_USAGE', 'cancelled: no record was built');
          throw err;
        } finally {
          rl.close();
        }
      }
      if (opts.presetFile) {
        const { readFileSync } = await import('node:fs');
        let text: string;
        try {
          text = readFileSync(opts.presetFile, 'utf8');
        } catch (err) {
          throw new SmarthostError('SH_USAGE', `--preset-file ${opts.presetFile}: ${(err as Error).message}`);
        }
        options.presetTerms = parsePresetFile(text);
      }
      const result = await buildSpf(options, await client(opts));
      print(opts, buildJson(result), renderBuild(result));
      process.exitCode = buildExitCode(result);
    });
}
