/** IP addresses and CIDR ranges (ipaddr.js), with IPv4-mapped IPv6 (::ffff:a.b.c.d) treated as IPv4. */
import ipaddr from 'ipaddr.js';

export type Range = [ipaddr.IPv4 | ipaddr.IPv6, number];

/** Normalises a client address: strips an IPv6 zone and turns ::ffff:1.2.3.4 into 1.2.3.4. */
export function normalizeAddress(addr: string): string {
  // Asked several times per SMTP session (policies, logs) for the same few LAN addresses; parsing
  // costs microseconds each time. A small cache, emptied when full.
  const known = normalized.get(addr);
  if (known !== undefined) return known;
  const plain = addr.replace(/%.*$/, '');
  const result = ipaddr.isValid(plain) ? ipaddr.process(plain).toString() : plain;
  if (normalized.size >= 4096) normalized.clear();
  normalized.set(addr, result);
  return result;
}

const normalized = new Map<string, string>();

/** Parses "10.0.0.0/8", "192.168.1.5", "fd00::/8" into a range; undefined when invalid. */
export function parseRange(entry: string): Range | undefined {
  const s = entry.trim();
  try {
    if (s.includes('/')) {
      const [a, bits] = ipaddr.parseCIDR(s);
      return [a.kind() === 'ipv6' && (a as ipaddr.IPv6).isIPv4MappedAddress() ? (a as ipaddr.IPv6).toIPv4Address() : a, a.kind() === 'ipv6' && (a as ipaddr.IPv6).isIPv4MappedAddress() ? bits - 96 : bits];
    }
    const a = ipaddr.process(s);
    return [a, a.kind() === 'ipv4' ? 32 : 128];
  } catch {
    return undefined;
  }
}

export function isRange(entry: string): boolean {
  return parseRange(entry) !== undefined;
}

/** True when addr lies in any of the ranges. */
export function inRanges(addr: string, ranges: Range[]): boolean {
  let a: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    a = ipaddr.process(addr.replace(/%.*$/, ''));
  } catch {
    return false;
  }
  return ranges.some(([net, bits]) => net.kind() === a.kind() && a.match(net as never, bits));
}
