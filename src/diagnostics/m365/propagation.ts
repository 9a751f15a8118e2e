/**
 * `dns propagation`: asks several resolvers the same question, side by side (what dnschecker.org
 * does), and shows which answer differs from the expected value (--expect) or, without one, from
 * the majority, and how long each resolver may keep its answer (the remaining TTL; for "no such
 * record", the negative-caching TTL from the SOA).
 *
 * Each resolver gets its own DNS client, asked alone: a resolver that times out or answers
 * SERVFAIL is "could-not-check", never "old value" or "missing". The default list is well-known
 * public resolvers; tests pass loopback servers. Never throws for DNS reasons.
 */
import { createDnsClient, type DnsAnswer, type DnsClient, type DnsRecord, type DnsServer, type DnsType } from '../dns/client.ts';

export const PUBLIC_RESOLVERS: { server: Required<DnsServer>; label: string }[] = [
  { server: { host: '1.1.1.1', port: 53 }, label: 'Cloudflare' },
  { server: { host: '8.8.8.8', port: 53 }, label: 'Google' },
  { server: { host: '9.9.9.9', port: 53 }, label: 'Quad9' },
  { server: { host: '208.67.222.222', port: 53 }, label: 'OpenDNS' },
];

export type ResolverState = 'expected' | 'majority' | 'differs' | 'could-not-check';

export interface ResolverRow {
  server: string;
  label?: string;
  rcode: string;
  /** The answer as text values, sorted ("(no such name)" / "(no record of this type)" for negatives). */
  values: string[];
  /** Seconds the resolver may keep serving this answer. */
  ttl?: number;
  state: ResolverState;
  error?: string;
}

export interface PropagationReport {
  name: string;
  type: DnsType;
  expect?: string;
  rows: ResolverRow[];
  /** The answer most resolvers gave, as text. */
  majority?: string[];
  summary: { agreeing: number; differing: number; couldNotCheck: number; total: number; line: string };
}

export interface PropagationOptions {
  resolvers?: { server: DnsServer; label?: string }[];
  /** The value the record should now have; a resolver whose answer lacks it "differs". */
  expect?: string;
  timeoutMs?: number;
  /** Client factory, for tests that want to inject; default createDnsClient over one server. */
  clientFor?: (server: DnsServer) => DnsClient;
}

const UNUSABLE = new Set(['TIMEOUT', 'NETERROR', 'SERVFAIL', 'REFUSED', 'BADNAME', 'FORMERR', 'NOTIMP']);

/** A record's value as one comparable string. */
export function recordText(r: DnsRecord): string {
  switch (r.type) {
    case 'MX': { const d = r.data as { preference: number; exchange: string }; return `${d.preference} ${d.exchange.toLowerCase().replace(/\.$/, '')}`; }
    case 'SRV': { const d = r.data as { priority: number; weight: number; port: number; target: string }; return `${d.priority} ${d.weight} ${d.port} ${d.target.toLowerCase().replace(/\.$/, '')}`; }
    case 'SOA': { const d = r.data as { mname: string; serial: number }; return `serial ${d.serial} (${d.mname})`; }
    case 'TXT':
    case 'SPF': return String(r.data);
    case 'CNAME':
    case 'NS':
    case 'PTR': return String(r.data).toLowerCase().replace(/\.$/, '');
    case 'AAAA':
    case 'A': return String(r.data).toLowerCase();
    default: return typeof r.data === 'string' ? r.data : JSON.stringify(r.data);
  }
}

function rowFromAnswer(a: DnsAnswer, type: DnsType, label?: string): Omit<ResolverRow, 'state'> {
  if (UNUSABLE.has(a.rcode) || !['NOERROR', 'NXDOMAIN'].includes(a.rcode)) {
    return { server: a.server, label, rcode: a.rcode, values: [], error: a.error ?? (a.rcode === 'SERVFAIL' ? 'the resolver could not get an answer (SERVFAIL)' : `DNS ${a.rcode}`) };
  }
  const ofType = a.answers.filter((r) => r.type === type);
  // Asking for A at a CNAME gives the chain; when the chain leads nowhere show the CNAME itself.
  const shown = ofType.length ? ofType : a.answers.filter((r) => r.type === 'CNAME');
  if (shown.length) {
    const values = [...new Set(shown.map((r) => (r.type === type ? recordText(r) : `CNAME ${recordText(r)}`)))].sort();
    return { server: a.server, label, rcode: a.rcode, values, ttl: Math.min(...shown.map((r) => r.ttl)) };
  }
  const soa = a.authority.find((r) => r.type === 'SOA');
  const negTtl = soa ? Math.min(soa.ttl, (soa.data as { minimum: number }).minimum) : undefined;
  return { server: a.server, label, rcode: a.rcode, values: [a.rcode === 'NXDOMAIN' ? '(no such name)' : '(no record of this type)'], ttl: negTtl };
}

const key = (values: string[]): string => JSON.stringify(values);

/** Asks every resolver and compares the answers. */
export async function checkPropagation(name: string, type: DnsType, options: PropagationOptions = {}): Promise<PropagationReport> {
  const resolvers = options.resolvers?.length ? options.resolvers : PUBLIC_RESOLVERS;
  const clientFor = options.clientFor ?? ((server: DnsServer) => createDnsClient({ servers: [server], timeoutMs: options.timeoutMs ?? 2000, retries: 1 }));
  const answers = await Promise.all(resolvers.map(async (r) => rowFromAnswer(await clientFor(r.server).query(name, type), type, r.label)));

  const answered = answers.filter((r) => r.error === undefined);
  const counts = new Map<string, number>();
  for (const r of answered) counts.set(key(r.values), (counts.get(key(r.values)) ?? 0) + 1);
  const best = [...counts.entries()].sort((x, y) => y[1] - x[1]);
  // A tie has no majority: every answer is then shown as differing unless --expect decides.
  const majority = best.length && (best.length === 1 || best[0][1] > best[1][1]) ? (JSON.parse(best[0][0]) as string[]) : undefined;
  const expect = options.expect?.trim();
  const matchesExpect = (values: string[]): boolean => values.some((v) => v === expect || v.toLowerCase().replace(/\.$/, '') === expect!.toLowerCase().replace(/\.$/, ''));

  const rows: ResolverRow[] = answers.map((r) => {
    if (r.error !== undefined) return { ...r, state: 'could-not-check' };
    if (expect !== undefined) return { ...r, state: matchesExpect(r.values) ? 'expected' : 'differs' };
    return { ...r, state: majority && key(r.values) === key(majority) ? 'majority' : 'differs' };
  });
  const agreeing = rows.filter((r) => r.state === 'expected' || r.state === 'majority').length;
  const differing = rows.filter((r) => r.state === 'differs').length;
  const couldNotCheck = rows.filter((r) => r.state === 'could-not-check').length;
  const total = rows.length;
  let line: string;
  if (expect !== undefined) line = `${agreeing} of ${total} resolvers answer the expected value "${expect}"${differing ? `; ${differing} still answer something else` : ''}${couldNotCheck ? `; ${couldNotCheck} could not be asked` : ''}`;
  else if (answered.length === 0) line = `none of the ${total} resolvers answered`;
  else if (!majority) line = `the resolvers disagree and no answer has a majority${couldNotCheck ? `; ${couldNotCheck} could not be asked` : ''}`;
  else line = differing ? `${differing} of ${total} resolvers answer differently from the majority${couldNotCheck ? `; ${couldNotCheck} could not be asked` : ''}` : `all ${answered.length} resolvers that answered agree${couldNotCheck ? `; ${couldNotCheck} could not be asked` : ''}`;
  return { name, type, expect, rows, majority, summary: { agreeing, differing, couldNotCheck, total, line } };
}

/** Readable side-by-side table. */
export function formatPropagationReport(r: PropagationReport): string {
  const out = [`${r.name} ${r.type}${r.expect ? ` (expecting "${r.expect}")` : ''}`];
  const width = Math.max(...r.rows.map((x) => `${x.server}${x.label ? ` ${x.label}` : ''}`.length), 8);
  for (const row of r.rows) {
    const who = `${row.server}${row.label ? ` ${row.label}` : ''}`.padEnd(width);
    const mark = row.state === 'could-not-check' ? '?' : row.state === 'differs' ? '✗' : '✓';
    const what = row.error !== undefined ? `could not check: ${row.error}` : row.values.join(' | ');
    const ttl = row.ttl !== undefined ? `  (TTL ${row.ttl} s left)` : '';
    out.push(`  ${mark} ${who}  ${what}${ttl}${row.state === 'differs' ? '  ← differs' : ''}`);
  }
  out.push('', r.summary.line);
  return `${out.join('\n')}\n`;
}
