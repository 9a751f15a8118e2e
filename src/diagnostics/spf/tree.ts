/**
 * Resolves an SPF record and everything it refers to, for `spf explain` and `spf lint`: the
 * include/redirect tree, what each DNS-querying term finds (addresses, MX hosts, nothing), the
 * worst-case count of DNS-querying terms (every branch walked, as a checker must assume) and void
 * lookups, and every DNS failure.
 *
 * Guarantees: bounded (depth ≤ 10, each domain walked once per path, loops detected); terms whose
 * domain holds macros are not queried (their target depends on the sender) and say so; a DNS
 * timeout / SERVFAIL is recorded in `dnsErrors`, never taken for "no record".
 */
import type { DnsAnswer, DnsType } from '../dns/client.ts';
import { isSpfRecord, parseRecord, type ParsedRecord, type Term } from './parse.ts';
import type { SpfResolver } from './evaluate.ts';

export interface TermFinding {
  term: Term;
  /** Domain the term queries (after the default domain was filled in); undefined for ip4/ip6/all. */
  target?: string;
  /** The target contains macros: resolved only per message. */
  dependsOnSender?: boolean;
  /** Addresses found (a, mx). */
  addresses?: string[];
  /** MX host names (mx). */
  mxHosts?: string[];
  /** MX hosts that have no address. */
  mxHostsWithoutAddress?: string[];
  /** This term's lookups returned nothing (NXDOMAIN or NODATA), counted as void lookups. */
  voids: number;
  /** The include/redirect node this term leads to. */
  child?: SpfNode;
  /** Ignored by receivers (redirect alongside all, terms after all). */
  ignored?: string;
}

export interface SpfNode {
  domain: string;
  via: 'root' | 'include' | 'redirect';
  /** The SPF record; undefined when the domain publishes none (or the lookup failed). */
  record?: string;
  /** The TXT character-strings the record was published as. */
  strings?: string[];
  /** Every SPF record found (lint flags more than one). */
  spfRecords: string[];
  /** Non-SPF TXT records that look related (spf2.0 / Sender ID). */
  senderId: string[];
  /** Size in octets of the TXT answer, and whether it needed TCP. */
  answerSize?: number;
  viaTcp?: boolean;
  parsed?: ParsedRecord;
  findings: TermFinding[];
  /** DNS-querying terms in this record alone. */
  ownLookups: number;
  /** DNS-querying terms in this record and everything under it (worst case). */
  totalLookups: number;
  /** This domain was already on the path: a loop. */
  loop?: boolean;
  /** The lookup of the record itself failed (timeout, SERVFAIL, …). */
  dnsError?: string;
}

export interface SpfTree {
  root: SpfNode;
  totalLookups: number;
  voidLookups: number;
  dnsErrors: string[];
}

const QUERYING = new Set(['include', 'a', 'mx', 'ptr', 'exists']);
const MAX_DEPTH = 10;

/** Walks from a domain (its record fetched) or from a record text (domain used for bare a/mx/ptr). */
export async function resolveSpfTree(start: { domain?: string; record?: string }, resolver: SpfResolver): Promise<SpfTree> {
  const state = { voids: 0, dnsErrors: [] as string[] };
  const ask = async (name: string, type: DnsType): Promise<DnsAnswer | undefined> => {
    const answer = await resolver.query(name, type);
    if (answer.rcode === 'NOERROR' || answer.rcode === 'NXDOMAIN') return answer;
    state.dnsErrors.push(`${type} ${name}: ${answer.rcode}${answer.error ? ` (${answer.error})` : ''}`);
    return undefined;
  };
  const domain = (start.domain ?? '').replace(/\.$/, '').toLowerCase();
  const root = start.record !== undefined
    ? await walkRecord({ domain: domain || '(the domain publishing it)', via: 'root', record: start.record, strings: [start.record], spfRecords: [start.record], senderId: [], findings: [], ownLookups: 0, totalLookups: 0 }, [], 0)
    : await walkDomain(domain, 'root', [], 0);
  return { root, totalLookups: root.totalLookups, voidLookups: state.voids, dnsErrors: state.dnsErrors };

  async function walkDomain(name: string, via: SpfNode['via'], path: string[], depth: number): Promise<SpfNode> {
    const node: SpfNode = { domain: name, via, spfRecords: [], senderId: [], findings: [], ownLookups: 0, totalLookups: 0 };
    if (path.includes(name)) {
      node.loop = true;
      return node;
    }
    const answer = await ask(name, 'TXT');
    if (!answer) {
      node.dnsError = state.dnsErrors[state.dnsErrors.length - 1];
      return node;
    }
    const txts = answer.answers.filter((r) => r.type === 'TXT') as Array<{ data: string; strings: string[] }>;
    if (txts.length === 0 && via !== 'root') state.voids++;
    node.answerSize = answer.size;
    node.viaTcp = answer.viaTcp;
    const spf = txts.filter((t) => isSpfRecord(t.data));
    node.spfRecords = spf.map((t) => t.data);
    node.senderId = txts.filter((t) => /^spf2\.0\//i.test(t.data)).map((t) => t.data);
    if (spf.length === 0) return node;
    node.record = spf[0].data;
    node.strings = spf[0].strings;
    return walkRecord(node, path, depth);
  }

  async function walkRecord(node: SpfNode, path: string[], depth: number): Promise<SpfNode> {
    const parsed = parseRecord(node.record!);
    node.parsed = parsed;
    const allIndex = parsed.terms.findIndex((t) => t.kind === 'mechanism' && t.name === 'all' && !t.error);
    for (const [index, term] of parsed.terms.entries()) {
      const finding: TermFinding = { term, voids: 0 };
      node.findings.push(finding);
      if (term.error) continue;
      if (term.kind === 'mechanism' && allIndex >= 0 && index > allIndex) finding.ignored = 'comes after "all", so receivers never reach it';
      if (term.kind === 'modifier' && term.name === 'redirect' && allIndex >= 0) finding.ignored = 'the record has an "all" mechanism, so receivers ignore redirect=';
      const querying = (term.kind === 'mechanism' && QUERYING.has(term.name)) || (term.kind === 'modifier' && term.name === 'redirect');
      if (!querying) continue;
      if (finding.ignored) continue; // never reached by a receiver: not counted, not resolved
      node.ownLookups++;
      const target = (term.value ?? node.domain).replace(/\.$/, '').toLowerCase();
      finding.target = target;
      if (target.includes('%') || target.startsWith('(')) {
        finding.dependsOnSender = true;
        continue;
      }
      if (depth >= MAX_DEPTH) continue;
      if (term.name === 'include' || term.name === 'redirect') {
        finding.child = await walkDomain(target, term.name === 'include' ? 'include' : 'redirect', [...path, node.domain], depth + 1);
      } else if (term.name === 'a') {
        finding.addresses = await addresses(target, finding);
        if (finding.addresses.length === 0) { finding.voids++; state.voids++; }
      } else if (term.name === 'mx') {
        const mx = await ask(target, 'MX');
        const hosts = (mx?.answers ?? []).filter((r) => r.type === 'MX').map((r) => (r.data as { exchange: string }).exchange);
        finding.mxHosts = hosts;
        finding.addresses = [];
        finding.mxHostsWithoutAddress = [];
        if (mx && hosts.length === 0) { finding.voids++; state.voids++; }
        for (const host of hosts.slice(0, 10)) {
          const found = await addresses(host, finding);
          if (found.length === 0) {
            finding.mxHostsWithoutAddress.push(host);
            finding.voids++;
            state.voids++;
          }
          finding.addresses.push(...found);
        }
      }
      // ptr and exists depend on the connecting client: nothing to resolve ahead of time
    }
    node.totalLookups = node.ownLookups + node.findings.reduce((sum, f) => sum + (f.child?.totalLookups ?? 0), 0);
    return node;
  }

  async function addresses(name: string, _finding: TermFinding): Promise<string[]> {
    const out: string[] = [];
    for (const type of ['A', 'AAAA'] as const) {
      const answer = await ask(name, type);
      for (const r of answer?.answers ?? []) if (r.type === type) out.push(String(r.data));
    }
    return out;
  }
}
