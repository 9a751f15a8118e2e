/**
 * A real DNS server on 127.0.0.1 (UDP and TCP on the same free port) answering from a zone literal,
 * for tests of the DNS client and everything built on it.
 *
 * The zone format is the openspf/pyspf conformance suite's `zonedata`, so suite scenarios are served
 * as written, with the same semantics as pyspf's reference driver:
 * - `{ SPF: ... }` entries are also served as TXT while the name has no `TXT:` entry; `TXT: NONE`
 *   means "no TXT here, and do not copy SPF";
 * - `'TIMEOUT'` in a name's list: reached before any record of the asked type → no reply at all
 *   (the client sees a timeout); reached after one → answer with what was found so far;
 * - a name absent from the zone → NXDOMAIN; present without records of the type → NODATA;
 * - a CNAME is followed for other types, as a recursive resolver returns it;
 * - TXT values: a string, or a list of character-strings of one record. Strings longer than 255
 *   octets are split into 255-octet pieces (the wire cannot carry them whole);
 * - a UDP reply larger than `udpLimit` (default 512) is sent empty with TC set, so clients retry
 *   over TCP.
 * Every question is logged in `queries` (name as sent, type, transport).
 */
import dgram from 'node:dgram';
import net from 'node:net';
import dnsPacket from 'dns-packet';

export type ZoneEntry =
  | 'TIMEOUT'
  | { A: string } | { AAAA: string } | { PTR: string } | { CNAME: string } | { NS: string }
  | { MX: [number, string] }
  | { TXT: string | string[] } | { SPF: string | string[] }
  | { SRV: [number, number, number, string] }
  | { SOA: [string, string, number, number, number, number, number] };

export type Zone = Record<string, ZoneEntry[]>;

export interface LoggedQuery { name: string; type: string; transport: 'udp' | 'tcp' }

export interface DnsServerOptions {
  ttl?: number;
  udpLimit?: number;
  authoritative?: boolean;
}

export interface TestDnsServer {
  host: string;
  port: number;
  queries: LoggedQuery[];
  /** Replaces the zone being served (e.g. a record that "changed"). */
  setZone(zone: Zone): void;
  stop(): Promise<void>;
}

type Rr = dnsPacket.Answer;

const norm = (name: string): string => name.toLowerCase().replace(/\.$/, '');

/** Splits a TXT value into character-strings that fit the wire (255 octets each). */
function txtStrings(value: string | string[]): Buffer[] {
  const out: Buffer[] = [];
  for (const s of Array.isArray(value) ? value : [value]) {
    const bytes = Buffer.from(String(s), 'utf8');
    if (bytes.length === 0) out.push(bytes);
    for (let i = 0; i < bytes.length; i += 255) out.push(bytes.subarray(i, i + 255));
  }
  return out;
}

/** What the zone says for (name, type): records, 'timeout', 'nxdomain' or [] for NODATA. */
function lookup(zone: Map<string, ZoneEntry[]>, name: string, type: string, ttl: number, depth = 0): Rr[] | 'timeout' | 'nxdomain' {
  const entries = zone.get(norm(name));
  if (!entries) return 'nxdomain';
  const hasTxt = entries.some((e) => typeof e === 'object' && 'TXT' in e);
  const found: Rr[] = [];
  for (const entry of entries) {
    if (entry === 'TIMEOUT') {
      if (found.length === 0) return 'timeout';
      break;
    }
    const [key, value] = Object.entries(entry)[0] as [string, unknown];
    if (key === 'CNAME' && type !== 'CNAME') {
      if (depth > 10) return [];
      const rest = lookup(zone, String(value), type, ttl, depth + 1);
      if (rest === 'timeout') return 'timeout';
      const cname: Rr = { name, type: 'CNAME', ttl, class: 'IN', data: String(value) };
      return rest === 'nxdomain' ? [cname] : [cname, ...rest];
    }
    const servesAs = key === type || (key === 'SPF' && type === 'TXT' && !hasTxt);
    if (!servesAs) continue;
    if (key === 'TXT' && value === 'NONE') continue;
    // an RRset holds each record once (RFC 2181 §5): identical entries are served once
    const rr = toRr(name, type, value, ttl);
    if (!found.some((f) => JSON.stringify(f) === JSON.stringify(rr))) found.push(rr);
  }
  return found;
}

function toRr(name: string, type: string, value: unknown, ttl: number): Rr {
  const base = { name, ttl, class: 'IN' as const };
  switch (type) {
    case 'TXT':
      return { ...base, type, data: txtStrings(value as string | string[]) } as Rr;
    case 'SPF': // dns-packet has no codec for type 99: hand it the TXT-layout rdata raw
      return { ...base, type, data: Buffer.concat(txtStrings(value as string | string[]).map((b) => Buffer.concat([Buffer.from([b.length]), b]))) } as unknown as Rr;
    case 'MX': {
      const [preference, exchange] = value as [number, string];
      return { ...base, type: 'MX', data: { preference, exchange } };
    }
    case 'SRV': {
      const [priority, weight, port, target] = value as [number, number, number, string];
      return { ...base, type: 'SRV', data: { priority, weight, port, target } };
    }
    case 'SOA': {
      const [mname, rname, serial, refresh, retry, expire, minimum] = value as [string, string, number, number, number, number, number];
      return { ...base, type: 'SOA', data: { mname, rname, serial, refresh, retry, expire, minimum } };
    }
    case 'A':
    case 'AAAA':
      // dns-packet would silently encode garbage; a real server refuses to load such a zone
      if (!(type === 'A' ? net.isIPv4 : net.isIPv6)(String(value))) throw new Error(`${name}: "${String(value)}" is not an ${type} address`);
      return { ...base, type, data: String(value) } as Rr;
    default:
      return { ...base, type, data: String(value) } as Rr;
  }
}

/** The SOA of the closest enclosing name that has one (for negative answers), if any. */
function soaFor(zone: Map<string, ZoneEntry[]>, name: string, ttl: number): Rr[] {
  const labels = norm(name).split('.');
  for (let i = 0; i < labels.length; i++) {
    const owner = labels.slice(i).join('.');
    const soa = zone.get(owner)?.find((e) => typeof e === 'object' && 'SOA' in e);
    if (soa && typeof soa === 'object' && 'SOA' in soa) return [toRr(owner, 'SOA', soa.SOA, ttl)];
  }
  return [];
}

export async function startDnsServer(zoneLiteral: Zone, options: DnsServerOptions = {}): Promise<TestDnsServer> {
  const ttl = options.ttl ?? 300;
  const udpLimit = options.udpLimit ?? 512;
  let zone = new Map<string, ZoneEntry[]>();
  const setZone = (z: Zone): void => { zone = new Map(Object.entries(z).map(([k, v]) => [norm(k), v])); };
  setZone(zoneLiteral);
  const queries: LoggedQuery[] = [];

  /** The reply to one request, or undefined to stay silent (TIMEOUT). */
  function answer(request: Buffer, transport: 'udp' | 'tcp'): Buffer | undefined {
    let packet: dnsPacket.DecodedPacket;
    try {
      packet = dnsPacket.decode(request);
    } catch {
      return undefined;
    }
    const q = packet.questions?.[0];
    if (!q) return undefined;
    queries.push({ name: q.name, type: q.type, transport });
    let result: ReturnType<typeof lookup>;
    try {
      result = lookup(zone, q.name, q.type, ttl);
    } catch {
      // a zone value the wire cannot carry: SERVFAIL, as a server with a broken zone answers
      return dnsPacket.encode({ type: 'response', id: packet.id, flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | 2, questions: [q], answers: [] });
    }
    if (result === 'timeout') return undefined;
    const nx = result === 'nxdomain';
    const answers = result === 'nxdomain' ? [] : result;
    const flags = (options.authoritative === false ? 0 : dnsPacket.AUTHORITATIVE_ANSWER) | dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | (nx ? 3 : 0);
    const base = { type: 'response' as const, id: packet.id, flags, questions: [q] };
    let full: Buffer;
    try {
      full = dnsPacket.encode({ ...base, answers, authorities: answers.length === 0 ? soaFor(zone, q.name, ttl) : [] });
    } catch {
      // a zone value the wire cannot carry (a malformed address): answer SERVFAIL rather than crash the test
      return dnsPacket.encode({ ...base, flags: (flags & ~0x0f) | 2, answers: [] });
    }
    if (transport === 'udp' && full.length > udpLimit) {
      return dnsPacket.encode({ ...base, flags: flags | dnsPacket.TRUNCATED_RESPONSE, answers: [] });
    }
    return full;
  }

  const sockets = new Set<net.Socket>();
  const onUdp = (udp: dgram.Socket) => (msg: Buffer, rinfo: dgram.RemoteInfo): void => {
    const reply = answer(msg, 'udp');
    if (reply) udp.send(reply, rinfo.port, rinfo.address);
  };
  const onTcp = (socket: net.Socket): void => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    let buffered = Buffer.alloc(0);
    socket.on('data', (chunk) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
        const msg = buffered.subarray(2, 2 + buffered.readUInt16BE(0));
        buffered = buffered.subarray(2 + msg.length);
        const reply = answer(msg, 'tcp');
        if (reply) {
          const len = Buffer.alloc(2);
          len.writeUInt16BE(reply.length);
          socket.write(Buffer.concat([len, reply]));
        }
      }
    });
  };

  // UDP and TCP must share one port: take a free UDP port, then try TCP on it (bounded retries).
  let udp: dgram.Socket | undefined;
  let tcp: net.Server | undefined;
  let port = 0;
  for (let attempt = 0; attempt < 20 && port === 0; attempt++) {
    const u = dgram.createSocket('udp4');
    u.on('message', onUdp(u));
    await new Promise<void>((resolve) => u.bind(0, '127.0.0.1', () => resolve()));
    const candidate = u.address().port;
    const t = net.createServer(onTcp);
    const ok = await new Promise<boolean>((resolve) => {
      t.once('error', () => resolve(false));
      t.listen(candidate, '127.0.0.1', () => resolve(true));
    });
    if (ok) {
      udp = u;
      tcp = t;
      port = candidate;
    } else {
      await new Promise<void>((resolve) => u.close(() => resolve()));
    }
  }
  if (!udp || !tcp) throw new Error('could not find a port free for both UDP and TCP on 127.0.0.1');
  const udpSocket = udp;
  const tcpServer = tcp;

  return {
    host: '127.0.0.1',
    port,
    queries,
    setZone,
    async stop() {
      for (const s of sockets) s.destroy();
      await Promise.all([
        new Promise<void>((resolve) => udpSocket.close(() => resolve())),
        new Promise<void>((resolve) => tcpServer.close(() => resolve())),
      ]);
    },
  };
}
