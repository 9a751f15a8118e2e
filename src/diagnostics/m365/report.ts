/**
 * The readable report of `dns m365`: one block per record with its state, what was found, what
 * Microsoft 365 expects and the fix. The JSON form is the M365DnsReport itself.
 */
import type { M365DnsReport, M365RecordCheck } from './records.ts';

function mark(c: M365RecordCheck): string {
  if (c.state === 'could-not-check') return '? COULD NOT CHECK';
  if (c.importance === 'must-not-exist') return c.state === 'wrong' ? '✗ PRESENT (must not be)' : '✓ absent';
  if (c.state === 'present') return '✓ present';
  if (c.state === 'wrong') return '✗ WRONG';
  return c.problem ? '✗ MISSING' : '· missing';
}

export function formatM365Report(r: M365DnsReport): string {
  const out = [`Microsoft 365 DNS records for ${r.domain}`, ''];
  for (const c of r.checks) {
    out.push(`${mark(c).padEnd(24)} ${c.label} — ${c.type} ${c.name} [${c.importance}]`);
    out.push(`    found:    ${c.found.length ? c.found.join(' | ') : '(nothing)'}`);
    out.push(`    expected: ${c.expected}`);
    out.push(`    ${c.detail}`);
    if (c.fix && (c.problem || c.state === 'missing')) out.push(`    fix:      ${c.fix}`);
  }
  out.push('', r.summary.line);
  return `${out.join('\n')}\n`;
}
