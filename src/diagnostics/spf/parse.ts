/**
 * Parses an SPF record (RFC 7208 §4.6, §5, §6, §12) into terms with their offsets in the record.
 *
 * Guarantees: every term is returned, even a broken one, with `error` (plain words, and a
 * `suggestion` for common typos such as `ipv4:`) and its [start, end) offsets, so lint and explain
 * can point at it. The decisions about what is a syntax error follow RFC 7208 as the reference
 * implementation (pyspf) reads it, which is what the conformance suites check.
 */
import { domainSpecError, macroSyntaxError } from './macro.ts';

export type Qualifier = '+' | '-' | '~' | '?';
export const MECHANISMS = ['all', 'include', 'a', 'mx', 'ptr', 'ip4', 'ip6', 'exists'] as const;
export type MechanismName = (typeof MECHANISMS)[number];

export interface Term {
  kind: 'mechanism' | 'modifier';
  /** The term exactly as written. */
  text: string;
  start: number;
  end: number;
  /** Lower-case mechanism or modifier name (for a broken mechanism: what was written before ":" or "/"). */
  name: string;
  qualifier: Qualifier;
  qualifierWritten: boolean;
  /** domain-spec, address or modifier value as written; undefined when absent. */
  value?: string;
  cidr4?: number;
  cidr6?: number;
  error?: string;
  /** Offset in the record of the character the error is about (a bad macro), when narrower than the term. */
  errorAt?: number;
  suggestion?: string;
}

export interface ParsedRecord {
  record: string;
  /** True when the record starts with "v=spf1" followed by a space or the end. */
  isSpf: boolean;
  terms: Term[];
  /** The first term with an error, if any (evaluation would be permerror). */
  firstError?: Term;
}

export const QUALIFIER_RESULT: Record<Qualifier, 'pass' | 'fail' | 'softfail' | 'neutral'> = {
  '+': 'pass', '-': 'fail', '~': 'softfail', '?': 'neutral',
};

const COMMON_MISTAKES: Record<string, string> = {
  prt: 'ptr', ip: 'ip4', ipv4: 'ip4', ipv6: 'ip6', 'all.': 'all', inc: 'include', includes: 'include',
  redirect: 'redirect=', exist: 'exists', spf1: 'v=spf1',
};

const IP4 = /^(?:(?:\d|[1-9]\d|1\d\d|2[0-4]\d|25[0-5])\.){3}(?:\d|[1-9]\d|1\d\d|2[0-4]\d|25[0-5])$/;
const H4 = '[0-9a-f]{1,4}';
const LS32 = `(?:${H4}:${H4}|(?:(?:\\d|[1-9]\\d|1\\d\\d|2[0-4]\\d|25[0-5])\\.){3}(?:\\d|[1-9]\\d|1\\d\\d|2[0-4]\\d|25[0-5]))`;
// RFC 3986 appendix A's IPv6address, the grammar RFC 7208 refers to
const IP6 = new RegExp(`^(?:(?:${H4}:){6}${LS32}|::(?:${H4}:){5}${LS32}|(?:${H4})?::(?:${H4}:){4}${LS32}|(?:(?:${H4}:){0,1}${H4})?::(?:${H4}:){3}${LS32}|(?:(?:${H4}:){0,2}${H4})?::(?:${H4}:){2}${LS32}|(?:(?:${H4}:){0,3}${H4})?::${H4}:${LS32}|(?:(?:${H4}:){0,4}${H4})?::${LS32}|(?:(?:${H4}:){0,5}${H4})?::${H4}|(?:(?:${H4}:){0,6}${H4})?::)$`, 'i');

export const isIp4Literal = (s: string): boolean => IP4.test(s);
export const isIp6Literal = (s: string): boolean => IP6.test(s);

/** True when the text is an SPF version 1 record ("v=spf1" then a space or the end, any case). */
export function isSpfRecord(text: string): boolean {
  return /^v=spf1( |$)/i.test(text);
}

export function parseRecord(record: string): ParsedRecord {
  const terms: Term[] = [];
  const isSpf = isSpfRecord(record);
  let offset = 0;
  const pieces = record.split(' ');
  for (let k = 0; k < pieces.length; k++) {
    const piece = pieces[k];
    const start = offset;
    offset += piece.length + 1;
    if (k === 0 && isSpf) continue; // the version
    if (piece === '') continue; // several spaces between terms are allowed
    terms.push(parseTerm(piece, start));
  }
  return { record, isSpf, terms, firstError: terms.find((t) => t.error) };
}

/** Parses one term at `start`. */
export function parseTerm(text: string, start = 0): Term {
  const base = { text, start, end: start + text.length };
  const modifier = /^([a-z][a-z0-9_\-.]*)=(.*)$/is.exec(text);
  if (modifier) {
    const name = modifier[1].toLowerCase();
    const value = modifier[2];
    const term: Term = { ...base, kind: 'modifier', name, value, qualifier: '+', qualifierWritten: false };
    if (text.endsWith(',')) return { ...term, error: 'terms are separated by spaces, not commas' };
    const valueAt = start + modifier[1].length + 1;
    if (name === 'redirect' || name === 'exp') {
      if (value === '') return { ...term, error: `${name}= needs a domain name` };
      const problem = domainSpecError(value);
      if (problem) return { ...term, error: `${name}=: ${problem.message}`, errorAt: valueAt + problem.offset };
    } else if (name !== 'default' && name !== 'op') {
      const problem = macroSyntaxError(value);
      if (problem) return { ...term, error: `${name}=: ${problem.message}`, errorAt: valueAt + problem.offset };
    }
    return term;
  }

  const term: Term = { ...base, kind: 'mechanism', name: '', qualifier: '+', qualifierWritten: false };
  if (text.endsWith(',')) return { ...term, name: text.slice(0, -1), error: 'terms are separated by spaces, not commas' };
  let rest = text;
  if ('+-~?'.includes(rest[0])) {
    term.qualifier = rest[0] as Qualifier;
    term.qualifierWritten = true;
    rest = rest.slice(1);
  }
  const dual = /\/\/(0|[1-9]\d*)$/.exec(rest);
  if (dual) {
    term.cidr6 = Number(dual[1]);
    rest = rest.slice(0, dual.index);
  }
  const single = /\/(0|[1-9]\d*)$/.exec(rest);
  if (single) {
    term.cidr4 = Number(single[1]);
    rest = rest.slice(0, single.index);
  }
  const colon = rest.indexOf(':');
  term.name = (colon < 0 ? rest : rest.slice(0, colon)).toLowerCase();
  if (colon >= 0) term.value = rest.slice(colon + 1);
  const fail = (error: string, suggestion?: string): Term => ({ ...term, error, suggestion });
  const name = term.name;

  if (COMMON_MISTAKES[name]) return fail(`unknown mechanism "${name}"`, `did you mean "${COMMON_MISTAKES[name]}"?`);
  if (IP4.test(name) && colon < 0) return fail(`"${text}" is an address without a mechanism`, `write "ip4:${rest}${term.cidr4 !== undefined ? `/${term.cidr4}` : ''}"`);
  if (!(MECHANISMS as readonly string[]).includes(name)) {
    if ((MECHANISMS as readonly string[]).includes(name.slice(1))) return fail(`"${name[0]}" is not a qualifier (use +, -, ~ or ?)`);
    if (/^(ip4|ip6)[^:]/.test(text.replace(/^[+\-~?]/, ''))) return fail(`unknown mechanism "${name}"`, `write "${name.slice(0, 3)}:" followed by the address`);
    return fail(`unknown mechanism "${name}"`);
  }
  if (name === 'a' && term.value !== undefined && IP4.test(term.value)) return fail(`"a:" takes a host name, not an address`, `write "ip4:${term.value}"`);

  if (name === 'a' || name === 'mx') {
    if (term.cidr4 !== undefined && term.cidr4 > 32) return fail(`IPv4 prefix length /${term.cidr4} is more than 32`);
    if (term.cidr6 !== undefined && term.cidr6 > 128) return fail(`IPv6 prefix length //${term.cidr6} is more than 128`);
  } else if (name === 'ip4') {
    if (term.cidr6 !== undefined) return fail('ip4 takes one prefix length, not a dual "//" one');
    if (term.cidr4 !== undefined && term.cidr4 > 32) return fail(`IPv4 prefix length /${term.cidr4} is more than 32`);
    if (!term.value || !IP4.test(term.value)) return fail(`"${term.value ?? ''}" is not an IPv4 address (four numbers 0-255 without leading zeros${/\/0\d/.test(text) ? '; prefix lengths have no leading zeros either' : ''})`);
    return term;
  } else if (name === 'ip6') {
    if (term.cidr6 !== undefined) return fail('ip6 takes one prefix length, not a dual "//" one');
    if (term.cidr4 !== undefined && term.cidr4 > 128) return fail(`IPv6 prefix length /${term.cidr4} is more than 128`);
    if (!term.value || !IP6.test(term.value)) return fail(`"${term.value ?? ''}" is not an IPv6 address`);
    return term;
  } else if (term.cidr4 !== undefined || term.cidr6 !== undefined) {
    return fail(`${name} does not take a prefix length`);
  }

  if (name === 'all') {
    if (colon >= 0) return fail('all takes nothing after it (only a qualifier before it)');
    return term;
  }
  if (name === 'exists' && term.value === undefined) return fail('exists needs a domain name');
  if (name === 'include' && term.value === undefined) return fail('include needs a domain name', 'write "include:domain"');
  if (term.value !== undefined) {
    if (term.value === '') return fail(`${name}: the domain name after ":" is empty`);
    const problem = domainSpecError(term.value);
    if (problem) return { ...fail(`${name}: ${problem.message}`), errorAt: start + (term.qualifierWritten ? 1 : 0) + colon + 1 + problem.offset };
  }
  return term;
}
