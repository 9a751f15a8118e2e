/**
 * `spf explain`: an SPF record in words. Each term says what it authorizes and what a receiver does
 * when it matches (per qualifier), the include/redirect tree is resolved with the DNS-lookup count
 * of every branch, and macros are spelled out letter by letter.
 * Pure over the resolved tree (tree.ts); DNS failures are carried through, never hidden.
 */
import type { SpfResolver } from './evaluate.ts';
import { tokenizeMacros } from './macro.ts';
import type { Qualifier, Term } from './parse.ts';
import { resolveSpfTree, type SpfNode, type SpfTree, type TermFinding } from './tree.ts';

export const QUALIFIER_WORDS: Record<Qualifier, { result: string; receiver: string }> = {
  '+': { result: 'pass', receiver: 'the server is authorized: the receiver accepts the message as far as SPF goes' },
  '-': { result: 'fail', receiver: 'the server is not authorized: the receiver may reject the message, or junk it (and DMARC can fail)' },
  '~': { result: 'softfail', receiver: 'probably not authorized: the receiver accepts the message but marks it, often into junk' },
  '?': { result: 'neutral', receiver: 'no statement: the receiver treats it as if there were no SPF record' },
};

const MACRO_WORDS: Record<string, string> = {
  s: 'the sender address', l: 'the local part of the sender', o: 'the domain of the sender', d: 'the domain being checked',
  i: 'the client IP address (IPv6 as dotted nibbles)', p: 'the validated host name of the client IP (slow; avoid)',
  v: '"in-addr" or "ip6"', h: 'the HELO/EHLO name', c: 'the client IP in readable form (exp only)',
  r: 'the receiving host name (exp only)', t: 'the current time in seconds (exp only)',
};

export interface ExplainedTerm {
  text: string;
  start: number;
  end: number;
  words: string;
  /** What a receiver does when this mechanism matches (mechanisms only). */
  onMatch?: string;
  result?: string;
  lookups: number;
  macros?: string[];
  error?: string;
  ignored?: string;
  child?: ExplainedNode;
}

export interface ExplainedNode {
  domain: string;
  via: SpfNode['via'];
  record?: string;
  problem?: string;
  lookups: number;
  terms: ExplainedTerm[];
}

export interface SpfExplanation {
  target: string;
  lookups: number;
  voidLookups: number;
  dnsErrors: string[];
  root: ExplainedNode;
}

export async function explainSpf(input: { domain?: string; record?: string }, resolver: SpfResolver): Promise<SpfExplanation> {
  const tree: SpfTree = await resolveSpfTree(input, resolver);
  return { target: input.domain ?? input.record ?? '', lookups: tree.totalLookups, voidLookups: tree.voidLookups, dnsErrors: tree.dnsErrors, root: explainNode(tree.root) };
}

function explainNode(node: SpfNode): ExplainedNode {
  let problem: string | undefined;
  if (node.loop) problem = 'already on the path above: this is a loop (receivers return permerror)';
  else if (node.dnsError) problem = `could not be fetched: ${node.dnsError}`;
  else if (!node.record) problem = node.via === 'root' ? 'no SPF record is published' : 'no SPF record is published there: receivers return permerror';
  else if (node.spfRecords.length > 1) problem = `${node.spfRecords.length} SPF records are published: receivers return permerror`;
  return {
    domain: node.domain, via: node.via, record: node.record, problem, lookups: node.totalLookups,
    terms: [{ text: 'v=spf1', start: 0, end: 6, words: 'SPF version 1: this TXT record is an SPF policy', lookups: 0 }, ...node.findings.map(explainTerm)].filter(() => node.record !== undefined),
  };
}

function explainTerm(f: TermFinding): ExplainedTerm {
  const t = f.term;
  const base: ExplainedTerm = { text: t.text, start: t.start, end: t.end, words: '', lookups: 0, ignored: f.ignored };
  if (t.error) return { ...base, words: `not understood: ${t.error}${t.suggestion ? ` (${t.suggestion})` : ''}`, error: t.error };
  const macros = macrosIn(t.value);
  if (macros.length > 0) base.macros = macros;
  if (t.kind === 'modifier') {
    if (t.name === 'redirect') return { ...base, lookups: f.ignored ? 0 : 1, words: `if nothing above matched, use the SPF record of ${t.value} instead (1 DNS lookup)`, child: f.child && explainNode(f.child) };
    if (t.name === 'exp') return { ...base, words: `on fail, the receiver may show the text of the TXT record at ${t.value} to the sender` };
    return { ...base, words: `unknown modifier "${t.name}": receivers ignore it` };
  }
  const q = QUALIFIER_WORDS[t.qualifier];
  const cidr = (v4?: number, v6?: number): string => [v4 !== undefined ? `any IPv4 address in the same /${v4}` : '', v6 !== undefined ? `any IPv6 address in the same /${v6}` : ''].filter(Boolean).join(' and ');
  const found = f.addresses ? ` (now: ${f.addresses.length > 0 ? f.addresses.join(', ') : 'none found'})` : '';
  const target = f.target?.startsWith('(') ? 'the domain publishing the record' : f.dependsOnSender ? `${t.value} (built per message from the macros)` : f.target;
  let words: string;
  let lookups = 1;
  switch (t.name) {
    case 'all': words = 'every other server'; lookups = 0; break;
    case 'ip4': words = `the IPv4 ${t.cidr4 !== undefined && t.cidr4 < 32 ? `network ${t.value}/${t.cidr4}` : `address ${t.value}`}`; lookups = 0; break;
    case 'ip6': words = `the IPv6 ${t.cidr4 !== undefined && t.cidr4 < 128 ? `network ${t.value}/${t.cidr4}` : `address ${t.value}`}`; lookups = 0; break;
    case 'a': words = `the addresses (A/AAAA) of ${target}${cidr(t.cidr4, t.cidr6) ? `, widened to ${cidr(t.cidr4, t.cidr6)}` : ''}${found}`; break;
    case 'mx': words = `the mail servers (MX) of ${target}${f.mxHosts ? ` [${f.mxHosts.join(', ') || 'no MX'}]` : ''}${cidr(t.cidr4, t.cidr6) ? `, widened to ${cidr(t.cidr4, t.cidr6)}` : ''}${found}`; break;
    case 'ptr': words = `servers whose reverse DNS name (validated forward) ends in ${target}; slow and discouraged`; break;
    case 'exists': words = `any client when the name ${target} has an A record (used with macros for per-sender rules)`; break;
    case 'include': words = `the servers authorized by the SPF record of ${target} (its pass counts; its fail does not end the check)`; break;
    default: words = t.name;
  }
  return { ...base, words: `${words}: ${q.result}`, onMatch: q.receiver, result: q.result, lookups: f.ignored ? 0 : lookups, child: f.child && explainNode(f.child) };
}

function macrosIn(value: string | undefined): string[] {
  if (!value || !value.includes('%')) return [];
  try {
    return tokenizeMacros(value).filter((m) => m.kind !== 'literal').map((m) => {
      if (m.kind === 'escape') return `${m.text}: ${m.text === '%%' ? 'a literal %' : m.text === '%_' ? 'a space' : 'an encoded space (%20)'}`;
      const extra = [m.digits !== undefined ? `keep the rightmost ${m.digits} part(s)` : '', m.reverse ? 'reversed' : '', m.delimiters ? `split on "${m.delimiters}"` : '', m.urlEscape ? 'URL-encoded' : ''].filter(Boolean).join(', ');
      return `${m.text}: ${MACRO_WORDS[m.letter!]}${extra ? ` (${extra})` : ''}`;
    });
  } catch {
    return [];
  }
}

/** The explanation as indented lines for a person. */
export function renderExplanation(e: SpfExplanation): string {
  const lines: string[] = [];
  const walk = (n: ExplainedNode, indent: string): void => {
    lines.push(`${indent}${n.via === 'root' ? '' : `${n.via} → `}${n.domain}${n.record ? `: "${n.record}"` : ''}  [${n.lookups} DNS lookup${n.lookups === 1 ? '' : 's'}]`);
    if (n.problem) lines.push(`${indent}  ! ${n.problem}`);
    for (const t of n.terms) {
      const words = `${t.words}${t.ignored ? ` — IGNORED: ${t.ignored}` : ''}`;
      if (t.text.length > 28) lines.push(`${indent}  ${t.text}`, `${indent}  ${''.padEnd(28)} ${words}`);
      else lines.push(`${indent}  ${t.text.padEnd(28)} ${words}`);
      // the usual "+" needs no repeating; what a receiver does otherwise is said at the term
      if (t.onMatch && t.result !== 'pass') lines.push(`${indent}  ${''.padEnd(28)}   on match: ${t.onMatch}`);
      for (const m of t.macros ?? []) lines.push(`${indent}  ${''.padEnd(28)}   ${m}`);
      if (t.child) walk(t.child, `${indent}    `);
    }
  };
  walk(e.root, '');
  lines.push('', `DNS-querying terms: ${e.lookups} of 10 allowed (every branch counted)${e.lookups > 10 ? ' — TOO MANY: receivers return permerror' : ''}`);
  lines.push(`Void lookups: ${e.voidLookups} of 2 allowed`);
  lines.push('Qualifiers (the sign before a term; none means +):');
  for (const [q, w] of Object.entries(QUALIFIER_WORDS)) lines.push(`  ${q} ${w.result.padEnd(8)} ${w.receiver}`);
  for (const err of e.dnsErrors) lines.push(`DNS FAILED (not "missing"): ${err}`);
  return lines.join('\n');
}
