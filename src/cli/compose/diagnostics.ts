/**
 * The diagnostics the console offers (SPF, Microsoft 365 DNS records, header analysis), handed to
 * the web layer as functions. Loaded on first use, so a relay that never opens the page pays nothing.
 */
import type { WebServices } from '../../web/services.ts';

export function buildDiagnostics(): NonNullable<WebServices['diagnostics']> {
  const dns = async () => (await import('../../diagnostics/dns/client.ts')).createDnsClient({});
  return {
    async spfCheck({ domain, ip }) {
      if (ip) {
        const { checkHost } = await import('../../diagnostics/spf/evaluate.ts');
        const { receivedSpfHeader } = await import('../../diagnostics/spf/received.ts');
        const outcome = await checkHost({ ip, sender: `postmaster@${domain}`, helo: domain }, await dns());
        return { ...outcome, receivedSpf: receivedSpfHeader(outcome) };
      }
      const { lintSpf } = await import('../../diagnostics/spf/lint.ts');
      return lintSpf({ domain }, await dns());
    },
    async dnsM365({ domain }) {
      const { checkM365Dns } = await import('../../diagnostics/m365/records.ts');
      return checkM365Dns(domain, await dns());
    },
    async headers({ text }) {
      const { analyzeHeaders } = await import('../../diagnostics/headers/analyze.ts');
      return analyzeHeaders(text);
    },
  };
}
