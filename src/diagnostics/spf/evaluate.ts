/**
 * RFC 7208 check_host(): the SPF result for a client address, a MAIL FROM (or HELO) identity and
 * a HELO name, with the explanation (`exp=`) a receiver would give on fail.
 *
 * DNS goes through an injected resolver (the dns-packet client, or a test's), so names node:dns
 * refuses still resolve. Limits: 10 DNS-querying terms (include, a, mx, ptr, exists, redirect),
 * counted through includes and redirects; 2 void lookups (NXDOMAIN or no records); 10 MX names;
 * the first 10 PTR names; 20 levels of recursion.
 *
 * Where RFC 7208 leaves room, the choices of the reference implementation (pyspf, which passes the
 * RFC 7208 and RFC 4408 suites) are followed, so that the differential test can hold us to it:
 * every term of a record is checked (and its domain expanded) before any is evaluated; `redirect=`
 * is counted when the record is read; `exp=` text is fetched when the record is read and errors
 * there only fall back to the default explanation; %{i} of an IPv6 client is upper-case nibbles.
 * Two RFC readings differ from pyspf on purpose: a DNS error during `ptr` / `%{p}` lookups means
 * "no match" / "unknown" (RFC 7208 §5.5), and macro parts are re-joined with "." whatever the
 * delimiter (§7.3).
 *
 * Failure: never throws for DNS or record problems; they become temperror / permerror with a
 * `problem` in plain words.
 */
import ipaddr from 'ipaddr.js';
import { isQueryableName, parseIp6, SpfDns, SpfError, type SpfResolver } from './lookup.ts';
import { expandMacros, MacroError, type MacroValues } from './macro.ts';
import { isSpfRecord, parseRecord, QUALIFIER_RESULT, type Term } from './parse.ts';

export type SpfResult = 'none' | 'neutral' | 'pass' | 'fail' | 'softfail' | 'temperror' | 'permerror';

export type { SpfResolver } from './lookup.ts';

export interface CheckHostInput {
  /** Client address (IPv4, IPv6 or IPv4-mapped IPv6). */
  ip: string;
  /** MAIL FROM address; empty for the null sender (then postmaster@HELO is checked). */
  sender: string;
  helo: string;
  /** Receiving host name, for %{r} and the header (default "unknown"). */
  receiver?: string;
  /** Explanation used on fail when the domain gives none. */
  defaultExplanation?: string;
  now?: () => Date;
}

export interface CheckHostOutcome {
  result: SpfResult;
  /** On fail: the domain's exp= text, or the default explanation. */
  explanation?: string;
  /** The term that decided (as written), when one did at the top level. */
  mechanism?: string;
  /** Why, for temperror/permerror. */
  problem?: string;
  /** The term that caused a permerror, when one did. */
  problemTerm?: string;
  identity: 'mailfrom' | 'helo';
  /** The domain checked (the sender's, or the HELO name). */
  domain: string;
  sender: string;
  /** The client address, written as a receiver writes it (IPv4-mapped IPv6 as IPv4). */
  ip: string;
  helo: string;
  receiver: string;
  lookups: number;
  voidLookups: number;
  /** Each step in words, in order. */
  trace: string[];
}

export const DEFAULT_EXPLANATION = 'SPF fail - not authorized';
const MAX_LOOKUPS = 10;
const MAX_MX = 10;
const MAX_PTR = 10;
const MAX_RECURSION = 20;

interface Prepared { term: Term; target?: string; cidr: number }

/** Runs check_host() for one client, identity and HELO. */
export async function checkHost(input: CheckHostInput, resolver: SpfResolver): Promise<CheckHostOutcome> {
  return new Evaluation(input, resolver).run();
}

class Evaluation {
  private readonly input: CheckHostInput;
  private readonly address: ipaddr.IPv4 | ipaddr.IPv6 | undefined;
  private readonly v6: boolean;
  private readonly identity: 'mailfrom' | 'helo';
  private readonly sender: string;
  private readonly local: string;
  private readonly senderDomain: string;
  private lookups = 0;
  private readonly net: SpfDns;
  private p: string | undefined;
  private explanation: string | undefined;
  private mechanism: string | undefined;
  private readonly trace: string[] = [];

  constructor(input: CheckHostInput, resolver: SpfResolver) {
    this.input = input;
    this.net = new SpfDns(resolver);
    try {
      const text = input.ip.trim().replace(/%.*$/, '');
      const parsed = text.includes(':') ? parseIp6(text) : ipaddr.IPv4.parse(text);
      // an IPv4-mapped IPv6 client (::ffff:a.b.c.d) is an IPv4 client (RFC 7208 §5)
      this.address = parsed instanceof ipaddr.IPv6 && parsed.isIPv4MappedAddress() ? parsed.toIPv4Address() : parsed;
    } catch {
      this.address = undefined;
    }
    this.v6 = this.address?.kind() === 'ipv6';
    this.identity = input.sender ? 'mailfrom' : 'helo';
    const full = input.sender || `postmaster@${input.helo}`;
    const at = full.lastIndexOf('@');
    this.local = at < 0 ? 'postmaster' : full.slice(0, at) || 'postmaster';
    this.senderDomain = at < 0 ? full : full.slice(at + 1);
    this.sender = `${this.local}@${this.senderDomain}`;
  }

  async run(): Promise<CheckHostOutcome> {
    const outcome = (result: SpfResult, extra: Partial<CheckHostOutcome> = {}): CheckHostOutcome => ({
      result, identity: this.identity, domain: this.senderDomain, sender: this.sender, ip: this.readableIp(), helo: this.input.helo,
      receiver: this.input.receiver ?? 'unknown', lookups: this.lookups, voidLookups: this.net.voids, trace: this.trace, ...extra,
    });
    if (!this.address) return outcome('permerror', { problem: `"${this.input.ip}" is not an IP address` });
    const domain = this.senderDomain.replace(/\.$/, '');
    // RFC 7208 §4.3: a malformed or single-label domain has no SPF result, without a query
    if (!isQueryableName(domain) || !domain.includes('.') || /^\[.*\]$/.test(domain)) {
      this.trace.push(`"${domain}" is not a fully qualified domain name: result none`);
      return outcome('none');
    }
    try {
      const record = await this.spfRecord(domain);
      if (record === undefined) {
        this.trace.push(`${domain} publishes no SPF record`);
        return outcome('none');
      }
      const result = await this.checkRecord(record, domain, 0);
      const extra: Partial<CheckHostOutcome> = { mechanism: this.mechanism };
      if (result === 'fail') extra.explanation = this.explanation ?? this.input.defaultExplanation ?? DEFAULT_EXPLANATION;
      return outcome(result, extra);
    } catch (err) {
      if (err instanceof SpfError) {
        this.trace.push(`${err.kind}: ${err.message}`);
        return outcome(err.kind, { problem: err.message, problemTerm: err.term });
      }
      throw err;
    }
  }

  /** The one SPF record at `domain`, undefined when there is none; throws on DNS errors / several. */
  private async spfRecord(domain: string): Promise<string | undefined> {
    if (!isQueryableName(domain)) return undefined;
    const texts = (await this.net.get(domain, 'TXT')) as string[];
    const spf = texts.filter(isSpfRecord);
    if (spf.length > 1) throw new SpfError('permerror', `${domain} has ${spf.length} SPF records; it must have one`);
    if (spf.length === 0) return undefined;
    // eslint-disable-next-line no-control-regex
    if (/[^\x00-\x7f]/.test(spf[0])) throw new SpfError('permerror', `the SPF record of ${domain} contains characters that are not ASCII`);
    return spf[0];
  }

  private countLookup(term: Term): void {
    this.lookups++;
    if (this.lookups > MAX_LOOKUPS) throw new SpfError('permerror', `more than ${MAX_LOOKUPS} DNS-querying terms (include, a, mx, ptr, exists, redirect)`, term.text);
  }

  private async checkRecord(record: string, domain: string, depth: number): Promise<Exclude<SpfResult, 'none' | 'temperror' | 'permerror'>> {
    if (depth > MAX_RECURSION) throw new SpfError('permerror', 'too many levels of include');
    this.trace.push(`${'  '.repeat(depth)}${domain}: "${record}"`);
    const parsed = parseRecord(record);
    const prepared: Prepared[] = [];
    let redirect: string | undefined;
    const seen = new Set<string>();
    // Phase 1: check every term and expand every domain before evaluating any (RFC 7208 §4.6).
    for (const term of parsed.terms) {
      if (term.error) throw new SpfError('permerror', `${term.error}`, term.text);
      if (term.kind === 'modifier') {
        if ((term.name === 'redirect' || term.name === 'exp') && seen.has(term.name)) throw new SpfError('permerror', `${term.name}= appears more than once`, term.text);
        seen.add(term.name);
        if (term.name === 'exp') {
          const target = await this.expand(term.value!, domain, term);
          const text = await this.fetchExplanation(target, domain);
          if (text !== undefined && depth === 0) this.explanation = text;
        } else if (term.name === 'redirect') {
          this.countLookup(term);
          redirect = await this.expand(term.value!, domain, term);
          if (!redirect) throw new SpfError('permerror', 'redirect= has an empty domain', term.text);
        } else if (term.name !== 'default' && term.name !== 'op') {
          await this.expand(term.value ?? '', domain, term); // unknown modifiers: only their syntax matters
        }
        continue;
      }
      // ip4/ip6 carry one prefix length; a/mx a dual one (IPv4 "/n", IPv6 "//n")
      const cidr = term.name === 'ip6' ? term.cidr4 ?? 128 : term.name === 'ip4' ? term.cidr4 ?? 32 : this.v6 ? term.cidr6 ?? 128 : term.cidr4 ?? 32;
      if (['a', 'mx', 'ptr', 'exists', 'include'].includes(term.name)) {
        const spec = term.value ?? domain;
        const target = await this.expand(spec, domain, term);
        if (!target) throw new SpfError('permerror', `${term.name}: the domain is empty`, term.text);
        if (term.name === 'include' && target === domain) throw new SpfError('permerror', 'include of the domain itself', term.text);
        prepared.push({ term, target, cidr });
      } else {
        prepared.push({ term, cidr });
      }
    }

    // Phase 2: evaluate mechanisms left to right; the first match decides.
    for (const { term, target, cidr } of prepared) {
      if (await this.matches(term, target, cidr, domain, depth)) {
        const result = QUALIFIER_RESULT[term.qualifier];
        this.trace.push(`${'  '.repeat(depth)}${term.text} matched: ${result}`);
        if (depth === 0) this.mechanism = term.text;
        return result;
      }
    }
    if (redirect !== undefined) {
      const record2 = await this.spfRecord(redirect);
      if (record2 === undefined) throw new SpfError('permerror', `redirect=${redirect}: that domain has no SPF record`, `redirect=${redirect}`);
      if (depth === 0) this.explanation = undefined; // the original record's exp= does not follow a redirect
      this.trace.push(`${'  '.repeat(depth)}no term matched: following redirect=${redirect}`);
      return this.checkRecord(record2, redirect, depth);
    }
    this.trace.push(`${'  '.repeat(depth)}no term matched: neutral`);
    if (depth === 0) this.mechanism = undefined;
    return 'neutral';
  }

  private async matches(term: Term, target: string | undefined, cidr: number, domain: string, depth: number): Promise<boolean> {
    switch (term.name) {
      case 'all':
        return true;
      case 'ip4':
        return !this.v6 && this.inNetwork(term.value!, cidr);
      case 'ip6':
        return this.v6 && this.inNetwork(term.value!, cidr);
      case 'a': {
        this.countLookup(term);
        const addrs = (await this.net.get(target!, this.v6 ? 'AAAA' : 'A')) as string[];
        return addrs.some((a) => this.inNetwork(a, cidr));
      }
      case 'mx': {
        this.countLookup(term);
        const mxs = (await this.net.get(target!, 'MX')) as Array<[number, string]>;
        if (mxs.length > MAX_MX) throw new SpfError('permerror', `${target} has ${mxs.length} MX records; an mx mechanism may look at ${MAX_MX} at most`, term.text);
        const sorted = [...mxs].sort((x, y) => x[0] - y[0] || x[1].localeCompare(y[1]));
        const addrs: string[] = [];
        for (const [, host] of sorted) addrs.push(...((await this.net.get(host, this.v6 ? 'AAAA' : 'A')) as string[]));
        return addrs.some((a) => this.inNetwork(a, cidr));
      }
      case 'exists': {
        this.countLookup(term);
        return ((await this.net.get(target!, 'A')) as string[]).length > 0;
      }
      case 'ptr': {
        this.countLookup(term);
        const names = await this.validatedNames();
        const suffix = target!.toLowerCase();
        return names.some((n) => n.toLowerCase() === suffix || n.toLowerCase().endsWith(`.${suffix}`));
      }
      case 'include': {
        this.countLookup(term);
        const record = await this.spfRecord(target!);
        if (record === undefined) throw new SpfError('permerror', `include:${target}: that domain has no SPF record`, term.text);
        const result = await this.checkRecord(record, target!, depth + 1);
        if (result !== 'pass') this.trace.push(`${'  '.repeat(depth)}${term.text} → ${result}: no match, continuing`);
        return result === 'pass';
      }
      default:
        throw new SpfError('permerror', `unknown mechanism "${term.name}"`, term.text);
    }
  }

  private inNetwork(addr: string, bits: number): boolean {
    try {
      // parse as written: "::1.1.1.1" in an ip6 term or AAAA record stays IPv6
      const other = addr.includes(':') ? parseIp6(addr) : ipaddr.IPv4.parse(addr);
      if (other.kind() !== this.address!.kind()) return false;
      return (this.address as ipaddr.IPv4).match(other as ipaddr.IPv4, bits);
    } catch {
      return false;
    }
  }

  /** Client names whose forward lookup includes the client address (first 10 PTR names). */
  private async validatedNames(): Promise<string[]> {
    let names: string[];
    try {
      names = (await this.net.get(this.reverseName(), 'PTR')) as string[];
    } catch (err) {
      if (err instanceof SpfError && err.kind === 'temperror') return []; // RFC 7208 §5.5: no match
      throw err;
    }
    const out: string[] = [];
    for (const name of names.slice(0, MAX_PTR)) {
      try {
        const addrs = (await this.net.get(name, this.v6 ? 'AAAA' : 'A')) as string[];
        if (addrs.some((a) => this.inNetwork(a, this.v6 ? 128 : 32))) out.push(name);
      } catch (err) {
        if (!(err instanceof SpfError && err.kind === 'temperror')) throw err; // §5.5: skip this name
      }
    }
    return out;
  }

  private reverseName(): string {
    return `${this.dottedIp().split('.').reverse().join('.')}.${this.v6 ? 'ip6' : 'in-addr'}.arpa`;
  }

  /** The client address as a receiver writes it (%{c}): IPv4-mapped IPv6 as plain IPv4. */
  private readableIp(): string {
    if (!this.address) return this.input.ip;
    return this.v6 ? (this.address as ipaddr.IPv6).toRFC5952String() : this.address.toString();
  }

  /** %{i}: dotted quad, or 32 dot-separated nibbles for IPv6, upper-case as the suites expect. */
  private dottedIp(): string {
    if (!this.v6) return this.address!.toString();
    return (this.address as ipaddr.IPv6).toNormalizedString().split(':').map((h) => h.padStart(4, '0')).join('').toUpperCase().split('').join('.');
  }

  private async macroP(domain: string): Promise<string> {
    if (this.p !== undefined) return this.p;
    const names = await this.validatedNames();
    const lower = domain.toLowerCase();
    this.p = names.length === 0 ? 'unknown'
      : names.find((n) => n.toLowerCase() === lower) ?? names.find((n) => n.toLowerCase().endsWith(`.${lower}`)) ?? names[0];
    return this.p;
  }

  private values(domain: string): MacroValues {
    return {
      s: this.sender, l: this.local, o: this.senderDomain, d: domain, i: this.dottedIp(), h: this.input.helo,
      v: this.v6 ? 'ip6' : 'in-addr',
      c: this.readableIp(),
      r: this.input.receiver ?? 'unknown',
      t: String(Math.floor((this.input.now?.() ?? new Date()).getTime() / 1000)),
      p: () => this.macroP(domain),
    };
  }

  private async expand(spec: string, domain: string, term: Term): Promise<string> {
    try {
      return await expandMacros(spec, this.values(domain));
    } catch (err) {
      if (err instanceof MacroError) throw new SpfError('permerror', err.message, term.text);
      throw err;
    }
  }

  /** The expanded exp= text, or undefined when it cannot be used (any error falls back to the default). */
  private async fetchExplanation(target: string, domain: string): Promise<string | undefined> {
    try {
      if (!target || !isQueryableName(target)) return undefined;
      const texts = (await this.net.get(target, 'TXT', true)) as string[];
      if (texts.length !== 1) return undefined;
      // eslint-disable-next-line no-control-regex
      if (/[^\x00-\x7f]/.test(texts[0])) return undefined;
      return await expandMacros(texts[0], this.values(domain), true);
    } catch {
      return undefined;
    }
  }

}
