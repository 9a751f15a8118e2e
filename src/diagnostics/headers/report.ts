/**
 * The readable report of a HeaderAnalysis, for a person at a terminal: summary, hop table (oldest
 * first, delay and TLS per hop), authentication, decoded anti-spam fields, findings, verdict.
 * Pure formatting; the JSON form is the HeaderAnalysis object itself.
 */
import { formatDuration, type HeaderAnalysis } from './analyze.ts';

function iso(ms: number | undefined): string {
  return ms === undefined ? '(no readable date)' : new Date(ms).toISOString().replace('.000Z', 'Z');
}

export function formatHeaderReport(a: HeaderAnalysis): string {
  const out: string[] = [];
  const s = a.summary;
  for (const [label, v] of [['Subject', s.subject], ['From', s.from], ['To', s.to], ['Date', s.date], ['Message-ID', s.messageId]] as const) {
    if (v) out.push(`${label.padEnd(11)} ${v}`);
  }
  out.push('', `Hops (oldest first): ${a.hops.length}`);
  for (const h of a.hops) {
    const delay = h.delayMs === undefined ? '' : h.delayMs < 0 ? `  delay ${formatDuration(h.delayMs)} (clock skew)` : `  delay ${formatDuration(h.delayMs)}`;
    out.push(`  ${String(h.number).padStart(2)}. ${iso(h.time)}${delay}`);
    out.push(`      from ${h.from ?? '?'}${h.fromIp && !(h.from ?? '').includes(h.fromIp) ? ` [${h.fromIp}]` : ''} → by ${h.by ?? '?'}${h.microsoft ? ' (Microsoft 365)' : ''}`);
    const tls = h.tls === 'tls' ? `TLS${h.tlsVersion ? ` ${h.tlsVersion.replace(/^TLS\s*/, '')}` : ''}${h.tlsCipher ? ` ${h.tlsCipher}` : ''}` : h.tls === 'none' ? 'no TLS' : h.tls === 'internal' ? 'internal' : 'TLS not shown';
    out.push(`      with ${h.with ?? '-'} · ${tls}${h.id ? ` · id ${h.id}` : ''}${h.for ? ` · for ${h.for}` : ''}`);
  }
  if (a.totalDelayMs !== undefined) out.push(`  Total: ${formatDuration(a.totalDelayMs)} from the first to the last hop${a.sinceDateMs !== undefined ? `; ${formatDuration(a.sinceDateMs)} since the Date header` : ''}`);

  out.push('', 'Authentication');
  const au = a.auth;
  const line = (k: string, v?: string, extra = ''): void => { if (v) out.push(`  ${k.padEnd(9)} ${v}${extra}`); };
  line('SPF', au.spf);
  line('DKIM', au.dkim);
  line('DMARC', au.dmarc);
  line('ARC', au.arc);
  line('compauth', au.compauth, au.compauthReason ? ` reason=${au.compauthReason}${au.compauthMeaning ? `: ${au.compauthMeaning}` : ''}` : '');
  if (!au.spf && !au.dkim && !au.dmarc) out.push('  (no Authentication-Results or Received-SPF header)');
  for (const block of a.authenticationResults) {
    out.push(`  Authentication-Results by ${block.authservId || '(no authserv-id: Microsoft 365 omits it)'}:`);
    for (const r of block.results) out.push(`    ${r.method}=${r.result}${r.reason ? ` reason="${r.reason}"` : ''}${Object.entries(r.props).map(([k, v]) => ` ${k}=${v}`).join('')}${r.comment ? ` (${r.comment})` : ''}`);
  }
  for (const r of a.receivedSpf) out.push(`  Received-SPF: ${r.result}${r.comment ? ` (${r.comment})` : ''}`);

  const sections: [string, { key: string; value: string; meaning: string }[]][] = [
    ['X-Forefront-Antispam-Report', a.antispam.forefront],
    ['X-Microsoft-Antispam', a.antispam.microsoft],
    ['X-Microsoft-Antispam-Mailbox-Delivery', a.antispam.mailboxDelivery],
  ];
  if (a.antispam.exchange.length) {
    out.push('', 'Exchange Online');
    for (const f of a.antispam.exchange) out.push(`  ${f.key}: ${f.value}`, `      ${f.meaning}`);
  }
  for (const [title, list] of sections) {
    if (list.length === 0) continue;
    out.push('', title);
    for (const f of list) out.push(`  ${f.key.padEnd(6)} ${(f.value || '(empty)').slice(0, 40).padEnd(14)} ${f.meaning}`);
  }
  if (a.antispam.scl !== undefined && a.antispam.forefront.length === 0) out.push('', `SCL ${a.antispam.scl}`);
  const sa = a.antispam.spamAssassin;
  if (sa) out.push('', `SpamAssassin: ${sa.flagged ? 'SPAM' : 'not spam'}${sa.score !== undefined ? `, score ${sa.score}` : ''}${sa.required !== undefined ? ` (threshold ${sa.required})` : ''}${sa.tests?.length ? `, rules ${sa.tests.join(', ')}` : ''}`);

  if (a.findings.length) {
    out.push('', 'Findings');
    for (const f of a.findings) out.push(`  ${f.severity === 'error' ? '✗' : f.severity === 'warning' ? '!' : '·'} ${f.message}`);
  }
  out.push('', `Verdict: ${a.verdict.line}`);
  return `${out.join('\n')}\n`;
}
