/**
 * Generates SPF test cases for the differential test against pyspf: a seeded PRNG builds, per case,
 * a domain `dN.test` with a random record (ip4/ip6 with and without prefixes, a/mx with dual CIDR,
 * ptr, exists with macros, include trees, redirect, exp= with macro text, unknown modifiers,
 * occasional syntax errors, void lookups, timeouts, multiple records, CNAMEs, too many MX names,
 * lookup-limit chains) and the zone data it needs, all in one zone literal.
 *
 * Bounded: include depth ≤ 2, ≤ 4 terms per record, one client address per case.
 * Left out on purpose, because RFC 7208 and pyspf read them differently (see evaluate.ts): DNS
 * timeouts on PTR names and on the names PTR records point to, delimiters other than "." on
 * macros other than %{l}/%{s}, senders with an empty local part, %{t} (the clock), and "%%" as the
 * very last characters of a string (pyspf refuses it, RFC 7208 §7.1 allows it), and an unknown
 * modifier repeated in one record (pyspf: permerror; RFC 7208 §6: ignored).
 */
import type { Zone, ZoneEntry } from './dns-server.ts';
import { prng } from './prng.ts';

export interface GeneratedCase { id: string; ip: string; sender: string; helo: string; domain: string }


export function generateCases(seed: number, count: number): { zone: Zone; cases: GeneratedCase[] } {
  const rnd = prng(seed);
  const int = (n: number): number => Math.floor(rnd() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)];
  const chance = (p: number): boolean => rnd() < p;
  const zone: Zone = {};
  const add = (name: string, entry: ZoneEntry): void => { (zone[name.toLowerCase()] ??= []).push(entry); };
  const cases: GeneratedCase[] = [];

  for (let n = 0; n < count; n++) {
    const base = `d${n}.test`;
    let k = 0;
    const fresh = (prefix: string): string => `${prefix}${k++}.${base}`;
    const v6 = chance(0.25);
    const mapped = !v6 && chance(0.1);
    const ip4 = `10.${(n >> 8) & 255}.${n & 255}.${10 + int(200)}`;
    const ip6 = `2001:db8:${n.toString(16)}::${(1 + int(0xfff)).toString(16)}`;
    const client = v6 ? ip6 : ip4;
    const near4 = `10.${(n >> 8) & 255}.${n & 255}.${(Number(ip4.split('.')[3]) + 1 + int(30)) % 250}`;
    const far4 = `172.16.${int(250)}.${1 + int(250)}`;
    const near6 = `2001:db8:${n.toString(16)}::${(0x1000 + int(0xfff)).toString(16)}`;
    const far6 = `2001:db8:ffff:${int(0xffff).toString(16)}::1`;
    const addr4 = (): string => pick([ip4, near4, far4]);
    const addr6 = (): string => pick([ip6, near6, far6]);
    const dotted = v6 ? expand6(ip6).toUpperCase().split('').join('.') : ip4;
    const reverse = `${dotted.split('.').reverse().join('.')}.${v6 ? 'ip6' : 'in-addr'}.arpa`;
    const local = pick(['user', 'first.last', 'a-b', 'postmaster', 'x+tag']);
    const nullSender = chance(0.15);
    const helo = `mail.${base}`;
    const domain = nullSender ? helo : base;
    const sender = nullSender ? '' : `${local}@${base}`;
    const l = nullSender ? 'postmaster' : local;

    /** Address records for a host name (some missing, some timing out, some via CNAME). */
    const host = (name: string, mayTimeout = true): void => {
      const r = rnd();
      if (r < 0.1 && mayTimeout) return; // NXDOMAIN (or NODATA at a name with a record): a void lookup
      if (r < 0.14 && mayTimeout) { add(name, 'TIMEOUT'); return; }
      if (r < 0.2 && mayTimeout) {
        const target = fresh('cn');
        add(name, { CNAME: target });
        host(target, mayTimeout);
        return;
      }
      for (let j = 0, m = 1 + int(2); j < m; j++) add(name, { A: addr4() });
      if (chance(0.6)) add(name, { AAAA: addr6() });
      if (chance(0.1)) add(name, { TXT: 'unrelated' });
    };

    const cidr4 = (): string => (chance(0.4) ? `/${pick([8, 16, 24, 28, 31, 32])}` : '');
    const cidr6 = (): string => (chance(0.3) ? `/${pick([32, 48, 64, 96, 128])}` : '');
    const dual = (): string => pick(['', '', `/${pick([16, 24, 32])}`, `//${pick([48, 64, 128])}`, `/${pick([24, 30])}//${pick([56, 64])}`]);

    const term = (owner: string, depth: number): string => {
      const q = chance(0.25) ? pick(['+', '-', '~', '?']) : '';
      const kind = pick(['ip4', 'ip4', 'ip6', 'a', 'a', 'mx', 'ptr', 'exists', 'include', 'include', 'typo', 'modifier']);
      switch (kind) {
        case 'ip4': return `${q}ip4:${addr4()}${cidr4()}`;
        case 'ip6': return `${q}ip6:${addr6()}${cidr6()}`;
        case 'a': {
          if (chance(0.3)) { host(owner, false); return `${q}a${dual()}`; }
          const name = fresh('h');
          host(name);
          return `${q}a:${name}${dual()}`;
        }
        case 'mx': {
          const name = chance(0.3) ? owner : fresh('m');
          const many = chance(0.05) ? 11 : 1 + int(3);
          if (chance(0.1)) { if (name !== owner) add(name, 'TIMEOUT'); }
          else for (let j = 0; j < many; j++) {
            const ex = fresh('mxh');
            add(name, { MX: [10 * (1 + int(3)), ex] });
            host(ex);
          }
          return `${q}mx${name === owner ? '' : `:${name}`}${dual()}`;
        }
        case 'ptr': {
          if (!zone[reverse.toLowerCase()] && chance(0.8)) {
            for (let j = 0, m = 1 + int(2); j < m; j++) {
              const target = chance(0.7) ? fresh('ptrh') : `other${k++}-${n}.example.test`;
              add(reverse, { PTR: target });
              if (chance(0.7)) add(target, v6 ? { AAAA: ip6 } : { A: ip4 });
              else add(target, v6 ? { AAAA: near6 } : { A: near4 });
            }
          }
          return `${q}ptr${chance(0.5) ? `:${pick([base, 'example.test', `ptrh0.${base}`])}` : ''}`;
        }
        case 'exists': {
          const which = int(3);
          const label = fresh('ex');
          const spec = [`%{i}.${label}`, `%{l}.${label}`, `%{ir}.%{v}.${label}`][which];
          const expanded = [`${dotted}.${label}`, `${l}.${label}`, `${dotted.split('.').reverse().join('.')}.${v6 ? 'ip6' : 'in-addr'}.${label}`][which];
          if (chance(0.5)) add(expanded, { A: '127.0.0.2' });
          return `${q}exists:${spec}`;
        }
        case 'include': {
          const name = fresh('inc');
          const r = rnd();
          if (depth >= 2 || r < 0.1) { /* no record: permerror */ }
          else if (r < 0.15) add(name, 'TIMEOUT');
          else add(name, { TXT: record(name, depth + 1) });
          return `${q}include:${name}`;
        }
        case 'typo':
          return pick(['ipv4:192.0.2.1', 'ip4:1.2.3', 'a/33', 'ip4:10.0.0.1/032', `mx:${base}.123`, 'exists', '-all:x', 'ptr/24', 'a:10.1.2.3', 'ip6:2001:db8::1//64', 'include']);
        default:
          return pick(['foo=bar', 'x-note=%{d}', 'moo.cow-x=%{l1r-}', 'bad=%{z}', 'default=-']);
      }
    };

    const record = (owner: string, depth: number): string => {
      const terms: string[] = [];
      for (let j = 0, m = int(depth === 0 ? 5 : 3); j < m; j++) {
        const t = term(owner, depth);
        const modifier = /^([a-z][a-z0-9_.-]*)=/i.exec(t)?.[1];
        // a repeated unknown modifier: RFC 7208 §6 ignores it, pyspf (strict) refuses it; left out
        if (modifier && terms.some((x) => x.startsWith(`${modifier}=`))) continue;
        terms.push(t);
      }
      const end = rnd();
      if (end < 0.75) terms.push(`${pick(['-', '~', '?', '+', ''])}all`);
      else if (end < 0.88) {
        const target = fresh('r');
        if (chance(0.85) && depth < 2) add(target, { TXT: record(target, depth + 1) });
        terms.push(`redirect=${target}`);
      }
      if (chance(0.25)) {
        const target = fresh('exp');
        const r = rnd();
        if (r < 0.7) add(target, { TXT: pick(['%{l} at %{o} may not send from %{i} (%{c}, %{v}, %{h}, %{r}) 100%% sure', 'Not allowed: %{s} via %{d2} %_ %-', '%{p} is not a sender for %{d}', 'see http://%{d}/why?s=%{S}&i=%{I}']) });
        else if (r < 0.8) { add(target, { TXT: 'one' }); add(target, { TXT: 'two' }); }
        else if (r < 0.9) add(target, { TXT: 'broken %{x} text' });
        terms.push(`exp=${target}`);
      }
      return ['v=spf1', ...terms].join(' ');
    };

    const shape = rnd();
    if (shape < 0.04) {
      add(domain, { TXT: record(domain, 0) });
      add(domain, { TXT: 'v=spf1 ~all' }); // two SPF records: permerror
    } else if (shape < 0.08) {
      // a lookup-limit chain: six includes, two a-lookups each
      let owner = domain;
      for (let j = 0; j < 6; j++) {
        const next = fresh('chain');
        add(owner, { TXT: `v=spf1 a:${fresh('h')} a:${fresh('h')} include:${next} ${j === 0 ? '-all' : '?all'}` });
        owner = next;
      }
      add(owner, { TXT: `v=spf1 ip4:${ip4} -all` });
    } else if (shape < 0.1) {
      add(domain, 'TIMEOUT');
    } else if (shape < 0.12) {
      // no SPF record at all
      add(domain, { TXT: 'google-site-verification=abc' });
    } else {
      add(domain, { TXT: record(domain, 0) });
      if (chance(0.1)) add(domain, { TXT: 'MS=ms12345678' });
    }
    if (!nullSender) host(helo, false);
    cases.push({ id: `case-${n}`, ip: mapped ? `::ffff:${ip4}` : client, sender, helo, domain });
  }
  return { zone, cases };
}

/** 2001:db8::1 → 32 hex digits. */
function expand6(addr: string): string {
  const [head, tail = ''] = addr.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return groups.map((g) => g.padStart(4, '0')).join('');
}
