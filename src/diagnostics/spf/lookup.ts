/**
 * DNS as SPF sees it (RFC 7208 §4.6.4, §5): one check's view of the resolver with its cache and
 * void-lookup count, the SpfError that ends a check, and address/name helpers.
 *
 * Guarantees: a DNS failure (timeout, SERVFAIL, refused, unreachable) is an SpfError('temperror');
 * NXDOMAIN and NODATA are an empty answer counted as a void lookup (unless asked not to), and the
 * third void lookup is an SpfError('permerror'); a name with an empty or over-long label is never
 * sent and is an empty answer. Non-empty answers are cached for the rest of the check.
 */
import ipaddr from 'ipaddr.js';
import type { DnsAnswer, DnsType } from '../dns/client.ts';

export interface SpfResolver {
  query(name: string, type: DnsType): Promise<DnsAnswer>;
}

const MAX_VOID = 2;

export class SpfError extends Error {
  readonly kind: 'permerror' | 'temperror';
  readonly term?: string;
  constructor(kind: 'permerror' | 'temperror', message: string, term?: string) {
    super(message);
    this.kind = kind;
    this.term = term;
  }
}

/** One check's DNS: cache, void-lookup count, CNAME chasing. */
export class SpfDns {
  voids = 0;
  private readonly resolver: SpfResolver;
  private readonly cache = new Map<string, string[] | Array<[number, string]>>();

  constructor(resolver: SpfResolver) {
    this.resolver = resolver;
  }

  /**
   * One DNS question with the SPF rules: errors → temperror, NXDOMAIN/NODATA → [] and a void
   * lookup (unless ignoreVoid), CNAMEs followed. Non-empty answers are cached for this check.
   */
  async get(name: string, type: 'A' | 'AAAA' | 'MX' | 'TXT' | 'PTR', ignoreVoid = false): Promise<string[] | Array<[number, string]>> {
    const key = `${type} ${name.replace(/\.$/, '').toLowerCase()}`;
    const cached = this.cache.get(key);
    if (cached && cached.length > 0) return cached;
    let current = name.replace(/\.$/, '');
    if (!isQueryableName(current)) return []; // cannot be asked: no data, and not a void lookup
    let result: string[] | Array<[number, string]> = [];
    for (let hop = 0; hop < 10 && isQueryableName(current); hop++) {
      const answer = await this.resolver.query(current, type);
      if (answer.rcode !== 'NOERROR' && answer.rcode !== 'NXDOMAIN') {
        throw new SpfError('temperror', `DNS ${type} query for ${current}: ${answer.rcode}${answer.error ? ` (${answer.error})` : ''}`);
      }
      const own = answer.answers.filter((r) => r.type === type);
      if (own.length > 0) {
        if (type === 'MX') {
          result = own.map((r) => {
            const d = r.data as { preference: number; exchange: string };
            return [d.preference, d.exchange.replace(/\.$/, '')] as [number, string];
          });
        } else if (type === 'TXT') {
          result = own.map((r) => String(r.data));
        } else {
          result = own.map((r) => String(r.data).replace(/\.$/, ''));
        }
        break;
      }
      // a stub answer with only a CNAME: ask for the target ourselves
      const cname = answer.answers.find((r) => r.type === 'CNAME');
      if (!cname || answer.rcode !== 'NOERROR') break;
      current = String(cname.data).replace(/\.$/, '');
    }
    if (result.length > 0) this.cache.set(key, result);
    else if (!ignoreVoid) {
      this.voids++;
      if (this.voids > MAX_VOID) throw new SpfError('permerror', `more than ${MAX_VOID} DNS lookups returned no records (void lookups); the last was ${type} ${name}`);
    }
    return result;
  }
}

export /** True when a name can be asked at all: no empty label, no label over 63 octets. */
function isQueryableName(name: string): boolean {
  const n = name.replace(/\.$/, '');
  if (n === '' || Buffer.byteLength(n) > 253) return false;
  return n.split('.').every((l) => l.length > 0 && Buffer.byteLength(l) <= 63);
}

/** Parses IPv6 text; a trailing dotted quad becomes two hex groups (ipaddr.js would turn "::1.1.1.1" into ::ffff:1.1.1.1). */
export function parseIp6(text: string): ipaddr.IPv6 {
  const quad = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (!quad) return ipaddr.IPv6.parse(text);
  const [a, b, c, d] = quad.slice(1).map(Number);
  const hex = `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  return ipaddr.IPv6.parse(text.slice(0, quad.index) + hex);
}
