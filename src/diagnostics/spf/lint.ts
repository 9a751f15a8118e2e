/**
 * `spf lint`: checks an SPF record (given, or fetched from a domain with everything it includes)
 * against the rules receivers apply and the mistakes admins make (research/spf-dns.md §3.2).
 *
 * Every finding has a stable rule id, a severity (error: receivers return permerror or the record
 * does not do what it says; warning: legal but risky; info), a message in plain words, the domain
 * whose record it is about and, for a term, its [start, end) offsets in that record.
 * Guarantees: DNS failures are findings of their own (`dns-unavailable`) and make `couldNotCheck`
 * true; they never turn into "record missing".
 */
import type { SpfResolver } from './evaluate.ts';
import { parseRecord } from './parse.ts';
import { resolveSpfTree, type SpfNode, type SpfTree } from './tree.ts';

export type Severity = 'error' | 'warning' | 'info';

export interface LintFinding {
  id: string;
  rule: string;
  severity: Severity;
  message: string;
  domain: string;
  term?: string;
  start?: number;
  end?: number;
  fix?: string;
}

export interface LintReport {
  target: string;
  domain?: string;
  record?: string;
  strings?: string[];
  lookups: number;
  voidLookups: number;
  findings: LintFinding[];
  errors: number;
  warnings: number;
  couldNotCheck: boolean;
  tree: SpfTree;
}

/** The rules, by slug: id and severity. Listed once so docs, JSON and tests agree. */
export const LINT_RULES = {
  'dns-unavailable': ['SPF000', 'error', 'a DNS query failed (timeout, SERVFAIL): the check is incomplete'],
  'no-record': ['SPF001', 'warning', 'no SPF record'],
  'multiple-records': ['SPF002', 'error', 'more than one SPF record at one name'],
  'type-spf-record': ['SPF003', 'warning', 'a type-99 SPF record (removed by RFC 7208)'],
  'syntax': ['SPF004', 'error', 'syntax error'],
  'bad-address': ['SPF005', 'error', 'bad ip4/ip6 address or prefix length'],
  'bad-domain': ['SPF006', 'error', 'invalid domain-spec'],
  'too-many-lookups': ['SPF007', 'error', 'more than 10 DNS-querying terms'],
  'too-many-void-lookups': ['SPF008', 'error', 'more than 2 void lookups'],
  'too-many-mx': ['SPF009', 'error', 'mx with more than 10 MX names'],
  'include-without-spf': ['SPF010', 'error', 'include of a domain without SPF'],
  'redirect-without-spf': ['SPF011', 'error', 'redirect to a domain without SPF'],
  'loop': ['SPF012', 'error', 'include or redirect loop'],
  'duplicate-modifier': ['SPF013', 'error', 'redirect= or exp= more than once'],
  'redirect-with-all': ['SPF014', 'warning', 'redirect= next to all: ignored'],
  'after-all': ['SPF015', 'warning', 'terms after all are ignored'],
  'no-all': ['SPF016', 'warning', 'neither all nor redirect='],
  'plus-all': ['SPF017', 'error', '+all authorizes the whole Internet'],
  'neutral-all': ['SPF018', 'warning', '?all protects nothing'],
  'softfail-all': ['SPF019', 'info', '~all: failures are only marked'],
  'ptr': ['SPF020', 'warning', 'ptr should not be used'],
  'no-address': ['SPF021', 'warning', 'a/mx target without addresses'],
  'long-string': ['SPF022', 'error', 'a string over 255 characters'],
  'split-without-space': ['SPF023', 'error', 'strings joined without a space'],
  'too-large': ['SPF024', 'warning', 'record too large for a UDP answer'],
  'bad-characters': ['SPF025', 'error', 'non-ASCII, control characters, quotes, commas or tabs'],
  'p-macro': ['SPF026', 'warning', '%{p} should not be used'],
  'modifier-first': ['SPF027', 'info', 'modifier before mechanisms'],
  'duplicate': ['SPF028', 'info', 'duplicate include or netblock'],
  'exp-unusable': ['SPF029', 'warning', 'exp= target without exactly one TXT'],
  'sender-id': ['SPF030', 'info', 'spf2.0 (Sender ID) record: unrelated to SPF'],
  'modifier-typo': ['SPF031', 'warning', 'unknown modifier that looks like a mistyped mechanism'],
  'near-lookup-limit': ['SPF032', 'info', '8-10 DNS-querying terms: close to the limit'],
  'm365-include-missing': ['SPF033', 'warning', 'MX is Exchange Online but the Microsoft 365 include is missing'],
} as const satisfies Record<string, readonly [string, Severity, string]>;

export type RuleSlug = keyof typeof LINT_RULES;

/** Reads the command-line argument: a record (starts with v=, or quoted strings) or a domain. */
export function parseSpfArgument(arg: string): { domain?: string; record?: string; strings?: string[] } {
  const text = arg.trim();
  if (text.startsWith('"')) {
    const strings = [...text.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => m[1].replace(/\\(.)/g, '$1'));
    return { record: strings.join(''), strings };
  }
  if (/^v=spf/i.test(text) || text.includes(' ')) return { record: text, strings: [text] };
  return { domain: text.replace(/\.$/, '').toLowerCase() };
}

export async function lintSpf(input: { domain?: string; record?: string; strings?: string[] }, resolver: SpfResolver): Promise<LintReport> {
  const tree = await resolveSpfTree(input, resolver);
  const findings: LintFinding[] = [];
  const add = (rule: RuleSlug, domain: string, message: string, extra: Partial<LintFinding> = {}): void => {
    const [id, severity] = LINT_RULES[rule];
    findings.push({ id, rule, severity, message, domain, ...extra });
  };
  const root = tree.root;
  if (input.strings && input.record !== undefined) root.strings = input.strings;

  for (const e of tree.dnsErrors) add('dns-unavailable', root.domain, `DNS query failed: ${e}; results below are incomplete, not "missing"`);

  if (input.domain && input.record === undefined) {
    const type99 = await resolver.query(input.domain, 'SPF');
    if (type99.rcode === 'NOERROR' && type99.answers.some((r) => r.type === 'SPF')) {
      add('type-spf-record', root.domain, 'a DNS record of type SPF (99) exists; RFC 7208 removed that type and receivers only read TXT', { fix: 'delete the type-SPF record and keep the TXT one' });
    }
  }
  if (!root.record && !root.dnsError) {
    add('no-record', root.domain, `${root.domain} publishes no SPF record: receivers get "none" and anyone can send as this domain`, { fix: 'publish e.g. "v=spf1 include:spf.protection.outlook.com -all" (Microsoft 365), or "v=spf1 -all" for a domain that sends no mail' });
  }
  visit(root, new Set());
  await checkExplanations(root);
  if (input.domain && root.record) await checkMicrosoft365AndDmarc(input.domain);

  if (tree.totalLookups > 10) {
    add('too-many-lookups', root.domain, `${tree.totalLookups} DNS-querying terms (include, a, mx, ptr, exists, redirect) counting every include; the limit is 10 and receivers return permerror past it. Receivers only count the path they walk, this counts the worst case`, { fix: 'remove unused includes, replace a/mx with ip4/ip6, or move other senders to a subdomain' });
  } else if (tree.totalLookups >= 8) {
    add('near-lookup-limit', root.domain, `${tree.totalLookups} of 10 DNS-querying terms used`);
  }
  if (tree.voidLookups > 2) add('too-many-void-lookups', root.domain, `${tree.voidLookups} lookups return no records (void lookups); receivers return permerror after 2`, { fix: 'remove terms that point at names without records' });

  const errors = findings.filter((f) => f.severity === 'error').length;
  const warnings = findings.filter((f) => f.severity === 'warning').length;
  return {
    target: input.domain ?? input.record ?? '', domain: input.domain, record: root.record, strings: root.strings,
    lookups: tree.totalLookups, voidLookups: tree.voidLookups, findings, errors, warnings, couldNotCheck: findings.some((f) => f.rule === 'dns-unavailable'), tree,
  };

  function visit(node: SpfNode, seenNetblocks: Set<string>): void {
    const d = node.domain;
    if (node.spfRecords.length > 1) add('multiple-records', d, `${d} has ${node.spfRecords.length} SPF records; receivers return permerror`, { fix: 'merge them into one record' });
    for (const sid of node.senderId) add('sender-id', d, `"${sid.slice(0, 40)}…" is a Sender ID (spf2.0) record: a different, abandoned standard; receivers checking SPF ignore it`, { fix: 'it can be deleted; it does not replace v=spf1' });
    if (!node.record) return;
    const record = node.record;
    checkStrings(node);
    // eslint-disable-next-line no-control-regex
    const bad = /[^\x20-\x7e]|[“”‘’,]/.exec(record);
    if (bad) {
      const what = /[\t]/.test(bad[0]) ? 'a tab' : /[,]/.test(bad[0]) ? 'a comma' : /[“”‘’]/.test(bad[0]) ? 'a typographic quote' : /[\x00-\x1f\x7f]/.test(bad[0]) ? 'a control character' : `the non-ASCII character "${bad[0]}"`;
      add('bad-characters', d, `the record contains ${what}; terms are separated by plain spaces and must be ASCII`, { start: bad.index, end: bad.index + 1 });
    }
    const size = node.answerSize ?? estimateAnswerSize(d, node.strings ?? [record]);
    if (size > 512 || node.viaTcp) add('too-large', d, `the TXT answer is ${size} octets: over 512, so it needs TCP and some receivers fail`, { fix: 'shorten the record or move senders to an include' });
    else if (size > 450) add('too-large', d, `the TXT answer is ${size} octets: close to the 512-octet UDP limit`, { fix: 'keep it under 450 octets' });

    const parsed = node.parsed ?? parseRecord(record);
    const seenModifiers = new Map<string, number>();
    let sawMechanism = false;
    let allTerm: typeof parsed.terms[number] | undefined;
    const includes = new Set<string>();
    for (const f of node.findings) {
      const t = f.term;
      const at = { term: t.text, start: t.start, end: t.end };
      if (t.error) {
        const rule: RuleSlug = (t.name === 'ip4' || t.name === 'ip6' || /prefix length|address/.test(t.error)) && !/unknown mechanism/.test(t.error) ? 'bad-address'
          : /domain|qualified/.test(t.error) ? 'bad-domain' : 'syntax';
        const where = t.errorAt ?? t.start;
        add(rule, d, `"${t.text}" at position ${where + 1}: ${t.error}`, { ...at, ...(t.errorAt !== undefined ? { start: t.errorAt, end: t.errorAt + 1 } : {}), fix: t.suggestion });
        continue;
      }
      if (t.kind === 'modifier') {
        seenModifiers.set(t.name, (seenModifiers.get(t.name) ?? 0) + 1);
        if ((t.name === 'redirect' || t.name === 'exp') && seenModifiers.get(t.name) === 2) add('duplicate-modifier', d, `${t.name}= appears more than once; receivers return permerror`, at);
        if (!sawMechanism && (t.name === 'redirect' || t.name === 'exp')) add('modifier-first', d, `${t.name}= before the mechanisms is legal but confusing; put modifiers at the end`, at);
        if (['include', 'ip4', 'ip6', 'a', 'mx', 'all', 'ptr', 'exists'].includes(t.name)) add('modifier-typo', d, `"${t.text}" is read as an unknown modifier and ignored`, { ...at, fix: `write "${t.name}:${t.value}"` });
        if (t.name === 'redirect' && f.ignored) add('redirect-with-all', d, `redirect=${t.value} is ignored because the record has an "all"`, { ...at, fix: 'remove either "all" or redirect=' });
        if (t.name === 'redirect' && f.child) childChecks(f.child, 'redirect', at);
        if (/%\{p/i.test(t.value ?? '')) add('p-macro', d, '%{p} is slow and unreliable (RFC 7208 §7.3 says not to use it)', at);
        continue;
      }
      sawMechanism = true;
      if (f.ignored && t.name !== 'all') add('after-all', d, `"${t.text}" ${f.ignored}`, at);
      if (t.name === 'all' && !allTerm) {
        allTerm = t;
        if (t.qualifier === '+') add('plus-all', d, '"+all" lets every server on the Internet send as this domain', { ...at, fix: 'use "-all" (or "~all" while testing)' });
        if (t.qualifier === '?') add('neutral-all', d, '"?all" gives neutral for everyone else: it protects nothing', { ...at, fix: 'use "-all" (or "~all" while testing)' });
        if (t.qualifier === '~') add('softfail-all', d, '"~all": mail from other servers is only marked (softfail), usually delivered to junk; "-all" asks receivers to reject it', at);
      }
      if (t.name === 'ptr') add('ptr', d, '"ptr" is slow, unreliable and RFC 7208 says not to publish it', { ...at, fix: 'list the servers with ip4/ip6 or a' });
      if (/%\{p/i.test(t.value ?? '')) add('p-macro', d, '%{p} is slow and unreliable (RFC 7208 §7.3 says not to use it)', at);
      if (t.name === 'ip4' || t.name === 'ip6') {
        const key = `${t.value}/${t.cidr4 ?? (t.name === 'ip4' ? 32 : 128)}`;
        if (seenNetblocks.has(key)) add('duplicate', d, `${t.text} is listed twice`, at);
        seenNetblocks.add(key);
      }
      if (t.name === 'include' && f.target) {
        if (includes.has(f.target)) add('duplicate', d, `include:${f.target} is listed twice (each costs a DNS lookup)`, at);
        includes.add(f.target);
        if (f.child) childChecks(f.child, 'include', at);
      }
      if ((t.name === 'a' || t.name === 'mx') && !f.dependsOnSender && f.addresses && f.voids > 0) {
        const what = t.name === 'a' ? `${f.target} has no A or AAAA record` : f.mxHosts?.length === 0 ? `${f.target} has no MX record` : `MX host(s) ${f.mxHostsWithoutAddress!.join(', ')} have no address`;
        add('no-address', d, `"${t.text}": ${what}; this is a void lookup and authorizes nothing`, at);
      }
      if (t.name === 'mx' && (f.mxHosts?.length ?? 0) > 10) add('too-many-mx', d, `${f.target} has ${f.mxHosts!.length} MX records; receivers return permerror above 10`, at);
    }
    if (!allTerm && !seenModifiers.has('redirect')) add('no-all', d, 'no "all" and no redirect=: mail from unlisted servers gets neutral, as if there were no record', { fix: 'end the record with "-all" (or "~all")', start: record.length, end: record.length });
  }

  /** Microsoft 365 tenants need its include; ~all means more or less depending on DMARC. */
  async function checkMicrosoft365AndDmarc(domain: string): Promise<void> {
    const mx = await resolver.query(domain, 'MX');
    const exchangeOnline = mx.answers.some((r) => r.type === 'MX' && /\.mail\.protection\.outlook\.com\.?$/i.test((r.data as { exchange: string }).exchange));
    const includes: string[] = [];
    const collect = (n: SpfNode): void => { for (const f of n.findings) { if (f.term.name === 'include' && f.target) includes.push(f.target); if (f.child) collect(f.child); } };
    collect(root);
    if (exchangeOnline && !includes.includes('spf.protection.outlook.com')) {
      add('m365-include-missing', domain, `${domain} receives mail in Exchange Online (its MX), but its SPF record does not include spf.protection.outlook.com, so mail Microsoft 365 sends for it fails SPF`, { fix: 'add include:spf.protection.outlook.com before the all' });
    }
    const soft = findings.find((f) => f.rule === 'softfail-all' && f.domain === domain);
    if (soft) {
      const dmarc = await resolver.query(`_dmarc.${domain}`, 'TXT');
      const policy = dmarc.answers.map((r) => String(r.data)).find((t) => /^v=DMARC1/i.test(t))?.match(/;\s*p=(\w+)/i)?.[1]?.toLowerCase();
      soft.message += policy === 'reject' || policy === 'quarantine'
        ? `; DMARC p=${policy} at _dmarc.${domain} still makes receivers ${policy} mail that fails SPF and DKIM alignment`
        : `; there is no enforcing DMARC policy at _dmarc.${domain} (${policy ? `p=${policy}` : 'none found'}), so mail from unlisted servers is at most marked`;
    }
  }

  /** exp= targets: exactly one TXT record expected, else receivers fall back to their default text. */
  async function checkExplanations(node: SpfNode): Promise<void> {
    for (const f of node.findings) {
      const t = f.term;
      if (f.child) await checkExplanations(f.child);
      if (t.error || t.kind !== 'modifier' || t.name !== 'exp' || !t.value || t.value.includes('%')) continue;
      const answer = await resolver.query(t.value, 'TXT');
      if (answer.rcode !== 'NOERROR' && answer.rcode !== 'NXDOMAIN') {
        add('dns-unavailable', node.domain, `DNS query failed: TXT ${t.value}: ${answer.rcode}`);
        continue;
      }
      const n = answer.answers.filter((r) => r.type === 'TXT').length;
      if (n !== 1) add('exp-unusable', node.domain, `exp=${t.value} has ${n === 0 ? 'no' : n} TXT records; receivers then use their default explanation`, { term: t.text, start: t.start, end: t.end });
    }
  }

  function childChecks(child: SpfNode, via: 'include' | 'redirect', at: Partial<LintFinding>): void {
    if (child.loop) {
      add('loop', child.domain, `${via}:${child.domain} leads back to a record already on the path: a loop, receivers return permerror`, at);
      return;
    }
    if (child.dnsError) return; // already reported as dns-unavailable
    if (!child.record) {
      add(via === 'include' ? 'include-without-spf' : 'redirect-without-spf', child.domain, `${via === 'include' ? 'include:' : 'redirect='}${child.domain}: that domain publishes no SPF record; receivers return permerror`, at);
      return;
    }
    visit(child, new Set());
  }

  function checkStrings(node: SpfNode): void {
    const strings = node.strings ?? [];
    let offset = 0;
    for (const [i, s] of strings.entries()) {
      if (Buffer.byteLength(s) > 255) add('long-string', node.domain, `a TXT string is ${Buffer.byteLength(s)} characters; one string holds at most 255`, { start: offset, end: offset + s.length, fix: 'split it into several quoted strings of at most 255 characters ("…" "…"); they are joined without a space' });
      const next = strings[i + 1];
      if (next !== undefined && !s.endsWith(' ') && !next.startsWith(' ') && s.length > 0 && next.length > 0) {
        const join = offset + s.length;
        const term = (node.parsed ?? parseRecord(node.record!)).terms.find((t) => t.start < join && t.end > join);
        if (term?.error) add('split-without-space', node.domain, `strings ${i + 1} and ${i + 2} are joined without a space, which makes "${term.text}"`, { term: term.text, start: term.start, end: term.end, fix: 'end the first string with a space, or start the next with one' });
      }
      offset += s.length;
    }
  }
}

/** The size of a DNS reply carrying these TXT strings (header, question, one answer). */
export function estimateAnswerSize(domain: string, strings: string[]): number {
  const name = Buffer.byteLength(domain) + 2;
  return 12 + name + 4 + 2 + 10 + strings.reduce((n, s) => n + 1 + Buffer.byteLength(s), 0);
}
