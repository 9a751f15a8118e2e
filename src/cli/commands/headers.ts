/**
 * smarthost headers FILE|- — Message Header Analyzer: Received hops with delays and TLS, SPF/DKIM/
 * DMARC/ARC results, Microsoft's anti-spam fields decoded, and why the message was junked.
 * Exit codes: 0 not junked and no authentication failure, 1 junked or an authentication failed,
 * 2 the input could not be read.
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { SmarthostError } from '../../core/errors.ts';

export function register(program: Command): void {
  program
    .command('headers')
    .argument('<file>', 'a message (.eml) or pasted headers; "-" reads standard input')
    .description('analyze message headers: hops and delays, TLS, SPF/DKIM/DMARC, Microsoft 365 spam verdict')
    .option('--json', 'print the analysis as JSON')
    .action(async (file: string, opts: { json?: boolean }) => {
      let text: string;
      try {
        text = readFileSync(file === '-' ? 0 : file, 'utf8');
      } catch (e) {
        throw new SmarthostError('SH_USAGE', `cannot read ${file === '-' ? 'standard input' : file}: ${(e as Error).message}`);
      }
      const { analyzeHeaders } = await import('../../diagnostics/headers/analyze.ts');
      const analysis = analyzeHeaders(text);
      if (analysis.hops.length === 0 && analysis.authenticationResults.length === 0 && analysis.antispam.forefront.length === 0 && !analysis.summary.from) {
        throw new SmarthostError('SH_USAGE', `${file === '-' ? 'standard input' : file} holds no message headers (expected lines like "Received: …")`);
      }
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(analysis, null, 2)}\n`);
      } else {
        const { formatHeaderReport } = await import('../../diagnostics/headers/report.ts');
        process.stdout.write(formatHeaderReport(analysis));
      }
      const authFailed = analysis.findings.some((f) => f.severity === 'error');
      process.exitCode = analysis.verdict.junked || authFailed ? 1 : 0;
    });
}
