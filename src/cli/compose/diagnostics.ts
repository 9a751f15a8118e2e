/**
 * The diagnostics the console offers — every tool of the CLI's `spf`, `dns` and `headers` commands —
 * handed to the web layer as functions. Each returns a DiagnosticView: a verdict in words, then
 * headings with tables and lines, built from the tool's own report (and, where the report is a tree,
 * the CLI's text rendering), so the page never shows raw JSON. Loaded on first use.
 *
 * DNS questions go to the system's resolvers, or to SMARTHOST_DNS_RESOLVERS ("host[:port],…") when
 * set — the relay's view of DNS may differ from the admin's PC; this says which one answered.
 */
import type { DnsServer } from '../../diagnostics/dns/client.ts';
import { SPF_RESULT_MEANING } from '../../diagnostics/spf/report.ts';
import type { WebServices } from '../../web/services.ts';

export type Verdict = 'ok' | 'problem' | 'unknown';

export interface DiagnosticSection {
  heading: string;
  lines?: string[];
  table?: { columns: string[]; rows: string[][] };
  /** Preformatted text (an include tree, a TXT value to copy). */
  pre?: string;
}

export interface DiagnosticView {
  title: string;
  verdict: Verdict;
  /** One sentence: the answer. */
  summary: string;
  sections: DiagnosticSection[];
}

export function resolversFromEnv(value = process.env.SMARTHOST_DNS_RESOLVERS): DnsServer[] | undefined {
  const list = (value ?? '').split(',').map((s) => s.trim()).filter(Boolean).map((s) => {
    const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(s) ?? /^([^:]+)(?::(\d+))?$/.exec(s);
    return m ? { host: m[1], port: m[2] ? Number(m[2]) : 53 } : { host: s, port: 53 };
  });
  return list.length ? list : undefined;
}

const dur = (ms?: number): string => (ms === undefined ? '' : Math.abs(ms) < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`);

export function buildDiagnostics(): NonNullable<WebServices['diagnostics']> {
  const servers = resolversFromEnv();
  const dns = async () => (await import('../../diagnostics/dns/client.ts')).createDnsClient({ servers });
  const asked = servers ? `asked ${servers.map((s) => `${s.host}:${s.port}`).join(', ')}` : 'asked the relay\'s system resolvers';

  return {
    async spfCheck({ domain, ip }): Promise<DiagnosticView> {
      if (ip) {
        const { checkHost } = await import('../../diagnostics/spf/evaluate.ts');
        const { receivedSpfHeader } = await import('../../diagnostics/spf/received.ts');
        const o = await checkHost({ ip, sender: `postmaster@${domain}`, helo: domain, receiver: 'smarthost' }, await dns());
        const lines = [`Meaning: ${SPF_RESULT_MEANING[o.result] ?? o.result}`];
        if (o.mechanism) lines.push(`Decided by: ${o.mechanism}`);
        if (o.problem) lines.push(`Problem: ${o.problem}`);
        if (o.explanation) lines.push(`The domain's explanation: ${o.explanation}`);
        lines.push(`DNS-querying terms: ${o.lookups} of 10, void lookups: ${o.voidLookups} of 2 (${asked})`);
        return {
          title: `SPF check: may ${ip} send for ${domain}?`,
          verdict: o.result === 'pass' ? 'ok' : o.result === 'temperror' ? 'unknown' : 'problem',
          summary: `SPF result: ${o.result.toUpperCase()} — ${SPF_RESULT_MEANING[o.result] ?? ''}`,
          sections: [
            { heading: 'Result', lines },
            { heading: 'Steps', lines: o.trace },
            { heading: 'Header a receiver would add', pre: receivedSpfHeader(o).replace(/\r\n/g, '\n') },
          ],
        };
      }
      const { lintSpf } = await import('../../diagnostics/spf/lint.ts');
      const r = await lintSpf({ domain }, await dns());
      return {
        title: `SPF lint of ${domain}`,
        verdict: r.couldNotCheck ? 'unknown' : r.errors + r.warnings > 0 ? 'problem' : 'ok',
        summary: r.couldNotCheck ? 'Could not check everything: a DNS query failed.' : r.findings.length === 0 ? 'No problems found.' : `${r.errors} error(s), ${r.warnings} warning(s).`,
        sections: [
          { heading: 'Record', lines: [r.record ? `"${r.record}"` : '(no SPF record found)', `DNS-querying terms: ${r.lookups} of 10, void lookups: ${r.voidLookups} of 2 (${asked})`] },
          { heading: 'Findings', table: { columns: ['Severity', 'Rule', 'Where', 'What', 'Fix'], rows: r.findings.map((f) => [f.severity, `${f.id} ${f.rule}`, f.domain, f.message, f.fix ?? '']) } },
        ],
      };
    },

    async spfExplain({ domain }): Promise<DiagnosticView> {
      const { explainSpf, renderExplanation } = await import('../../diagnostics/spf/explain.ts');
      const e = await explainSpf({ domain }, await dns());
      const bad = (n: typeof e.root): boolean => Boolean(n.problem) || n.terms.some((t) => t.error || (t.child && bad(t.child)));
      const verdict: Verdict = e.dnsErrors.length ? 'unknown' : bad(e.root) || e.lookups > 10 || e.voidLookups > 2 ? 'problem' : 'ok';
      return {
        title: `SPF explained: ${domain}`,
        verdict,
        summary: `${e.root.record ? `"${e.root.record}"` : 'no SPF record'}: ${e.lookups} of 10 DNS-querying terms${e.lookups > 10 ? ' — TOO MANY: receivers return permerror' : ''}.`,
        sections: [
          { heading: 'Terms of the record, in words', table: { columns: ['Term', 'Means', 'On match'], rows: e.root.terms.map((t) => [t.text, `${t.words}${t.ignored ? ` — IGNORED: ${t.ignored}` : ''}`, t.onMatch ?? '']) } },
          { heading: 'Include tree', pre: renderExplanation(e) },
          ...(e.dnsErrors.length ? [{ heading: 'DNS failures (not "missing")', lines: e.dnsErrors }] : []),
        ],
      };
    },

    async spfBuild({ domain, include, ip, mx, all }): Promise<DiagnosticView> {
      const { buildSpf } = await import('../../diagnostics/spf/build.ts');
      const m365 = include.some((i) => /^(include:)?spf\.protection\.outlook\.com$/i.test(i));
      const b = await buildSpf({
        domain, all, m365,
        include: include.filter((i) => !/^(include:)?spf\.protection\.outlook\.com$/i.test(i)).map((i) => i.replace(/^include:/i, '')),
        ip4: ip.filter((x) => !x.includes(':')), ip6: ip.filter((x) => x.includes(':')), mx: mx ? [domain] : undefined,
      }, await dns());
      return {
        title: `SPF record for ${domain}`,
        verdict: b.couldNotCheck ? 'unknown' : b.ok ? 'ok' : 'problem',
        summary: b.ok ? `Publish this TXT value at ${domain} (replace the old v=spf1 record; keep only one).` : 'This record would not work.',
        sections: [
          ...(b.existing ? [{ heading: 'Current record', pre: b.existing }] : []),
          { heading: 'New record', pre: b.ok ? b.txt : b.record, lines: [`${b.record.length} characters in ${b.strings.length} string(s)`] },
          ...(b.refused.length ? [{ heading: 'Why it was refused', lines: b.refused }] : []),
          ...(b.lint?.findings.length ? [{ heading: 'Notes', lines: b.lint.findings.map((f) => `${f.id} ${f.rule}: ${f.message}`) }] : []),
        ],
      };
    },

    async dnsM365({ domain, tenantPrefix, verification }): Promise<DiagnosticView> {
      const { checkM365Dns } = await import('../../diagnostics/m365/records.ts');
      const r = await checkM365Dns(domain, await dns(), { tenantPrefix, verification });
      const state = (c: (typeof r.checks)[number]): string => (c.state === 'could-not-check' ? 'could not check'
        : c.importance === 'must-not-exist' ? (c.state === 'wrong' ? 'present (must not be)' : 'absent (good)')
          : c.state === 'missing' && !c.problem ? 'missing (optional)' : c.state);
      return {
        title: `Microsoft 365 DNS records for ${r.domain}`,
        verdict: r.summary.problems ? 'problem' : r.summary.couldNotCheck ? 'unknown' : 'ok',
        summary: r.summary.line,
        sections: [{
          heading: `Records (${asked})`,
          table: { columns: ['Record', 'State', 'Found', 'Expected', 'What it means / fix'], rows: r.checks.map((c) => [`${c.label} — ${c.type} ${c.name}`, state(c), c.found.join(' | ') || '(nothing)', c.expected, c.fix && (c.problem || c.state === 'missing') ? `${c.detail} Fix: ${c.fix}` : c.detail]) },
        }],
      };
    },

    async dnsPropagation({ domain, type, expect }): Promise<DiagnosticView> {
      const { checkPropagation } = await import('../../diagnostics/m365/propagation.ts');
      const r = await checkPropagation(domain, type as Parameters<typeof checkPropagation>[1], { resolvers: servers?.map((server) => ({ server })), expect });
      return {
        title: `${type} ${domain} across resolvers`,
        verdict: r.summary.differing > 0 ? 'problem' : r.summary.couldNotCheck === r.summary.total ? 'unknown' : 'ok',
        summary: r.summary.line,
        sections: [{
          heading: 'Answers',
          table: { columns: ['Resolver', 'Answer', 'TTL', 'State'], rows: r.rows.map((row) => [row.label ? `${row.label} (${row.server})` : row.server, row.error ?? row.values.join(' | '), row.ttl === undefined ? '' : `${row.ttl} s`, row.state]) },
        }],
      };
    },

    async headers({ text }): Promise<DiagnosticView> {
      const { analyzeHeaders } = await import('../../diagnostics/headers/analyze.ts');
      const a = analyzeHeaders(text);
      const s = a.summary;
      const errors = a.findings.filter((f) => f.severity === 'error').length;
      return {
        title: `Headers of "${s.subject ?? '(no subject)'}"`,
        verdict: a.verdict.junked || errors ? 'problem' : 'ok',
        summary: a.verdict.line,
        sections: [
          { heading: 'Message', table: { columns: ['Field', 'Value'], rows: [['From', s.from ?? ''], ['To', s.to ?? ''], ['Date', s.date ?? ''], ['Message-ID', s.messageId ?? ''], ['Total delay', dur(a.totalDelayMs)]] } },
          { heading: 'Authentication', table: { columns: ['Check', 'Result'], rows: [['SPF', a.auth.spf ?? '—'], ['DKIM', a.auth.dkim ?? '—'], ['DMARC', a.auth.dmarc ?? '—'], ['ARC', a.auth.arc ?? '—'], ['Microsoft composite (compauth)', [a.auth.compauth, a.auth.compauthReason, a.auth.compauthMeaning].filter(Boolean).join(' — ') || '—']] } },
          { heading: 'Hops (oldest first)', table: { columns: ['#', 'From', 'By', 'With', 'Delay'], rows: a.hops.map((h) => [String(h.number), h.fromComment ? `${h.from ?? ''} (${h.fromComment})` : h.from ?? '', h.by ?? '', h.with ?? '', dur(h.delayMs)]) } },
          { heading: 'Findings', lines: a.findings.length ? a.findings.map((f) => `${f.severity}: ${f.message}`) : ['Nothing unusual.'] },
        ],
      };
    },
  };
}
