/**
 * A small DNS stub client on the `dns-packet` wire-format library, used by every diagnostic that
 * asks DNS a question (SPF, Microsoft 365 records, propagation).
 *
 * Why not node:dns: c-ares refuses to send names SPF needs (`foo:bar/baz.example.com`, names with
 * spaces or `%`) with EBADNAME, and hides the rcode, TTLs, the AA flag and the SOA of negative
 * answers, which the propagation check needs.
 *
 * Guarantees:
 * - `query()` never rejects for DNS reasons: a timeout is `rcode: 'TIMEOUT'` (never an empty
 *   answer), an unreachable server `rcode: 'NETERROR'`, an unsendable name `rcode: 'BADNAME'`.
 *   NXDOMAIN and NODATA (NOERROR with no answers of the type) stay distinct.
 * - A UDP reply with TC set is retried over TCP on the same server.
 * - TXT records carry both the joined text and the individual character-strings.
 * - Servers are tried in order; a timeout, SERVFAIL, REFUSED or network error moves on to the next.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { getServers } from 'node:dns';
import { randomInt } from 'node:crypto';
import dnsPacket from 'dns-packet';

export type DnsType = 'A' | 'AAAA' | 'MX' | 'TXT' | 'CNAME' | 'PTR' | 'SRV' | 'NS' | 'SOA' | 'SPF' | 'CAA';

export type DnsRcode =
  | 'NOERROR' | 'FORMERR' | 'SERVFAIL' | 'NXDOMAIN' | 'NOTIMP' | 'REFUSED'
  | 'TIMEOUT' | 'NETERROR' | 'BADNAME' | string;

export interface DnsServer { host: string; port?: number }

export interface MxData { preference: number; exchange: string }
export interface SrvData { priority: number; weight: number; port: number; target: string }
export interface SoaData { mname: string; rname: string; serial: number; refresh: number; retry: number; expire: number; minimum: number }

export interface StringRecord { name: string; type: 'A' | 'AAAA' | 'CNAME' | 'PTR' | 'NS'; ttl: number; data: string }
/** TXT (and type-99 SPF): `data` is the character-strings joined with nothing between them. */
export interface TxtRecord { name: string; type: 'TXT' | 'SPF'; ttl: number; data: string; strings: string[] }
export interface MxRecord { name: string; type: 'MX'; ttl: number; data: MxData }
export interface SrvRecord { name: string; type: 'SRV'; ttl: number; data: SrvData }
export interface SoaRecord { name: string; type: 'SOA'; ttl: number; data: SoaData }
export interface OtherRecord { name: string; type: string; ttl: number; data: unknown }

/** One resource record. */
export type DnsRecord = StringRecord | TxtRecord | MxRecord | SrvRecord | SoaRecord | OtherRecord;

export interface RecordByType {
  A: StringRecord; AAAA: StringRecord; CNAME: StringRecord; PTR: StringRecord; NS: StringRecord;
  TXT: TxtRecord; SPF: TxtRecord; MX: MxRecord; SRV: SrvRecord; SOA: SoaRecord;
}

export interface DnsAnswer {
  name: string;
  type: DnsType;
  /** DNS rcode, or TIMEOUT / NETERROR / BADNAME when no usable reply came back. */
  rcode: DnsRcode;
  /** Answer section as received (a CNAME chain comes first, then the records of the type). */
  answers: DnsRecord[];
  /** Authority section (the SOA of a negative answer carries the negative TTL). */
  authority: DnsRecord[];
  authoritative: boolean;
  /** True when the reply came over TCP after a truncated UDP reply. */
  viaTcp: boolean;
  /** Size in octets of the (final) reply. */
  size: number;
  /** "host:port" that answered (or was last tried). */
  server: string;
  /** Plain-words reason when rcode is TIMEOUT / NETERROR / BADNAME. */
  error?: string;
}

export interface DnsClientOptions {
  servers?: DnsServer[];
  /** Per-attempt timeout in ms (default 2000). */
  timeoutMs?: number;
  /** Extra attempts per server after a timeout (default 1). */
  retries?: number;
}

export interface DnsClient {
  readonly servers: ReadonlyArray<Required<DnsServer>>;
  query(name: string, type: DnsType): Promise<DnsAnswer>;
}

/** Records of one type from an answer (skips the CNAME chain unless CNAME was asked for). */
export function recordsOf<T extends keyof RecordByType>(answer: DnsAnswer, type: T): RecordByType[T][] {
  return answer.answers.filter((r) => r.type === type) as RecordByType[T][];
}

/** Why a name cannot be put on the wire, or undefined when it can. */
export function badNameReason(name: string): string | undefined {
  const n = name.replace(/\.$/, '');
  if (n === '') return undefined; // the root
  if (Buffer.byteLength(n) > 253) return 'the name is longer than 253 octets';
  for (const label of n.split('.')) {
    if (label === '') return 'the name has an empty label';
    if (Buffer.byteLength(label) > 63) return `the label "${label.slice(0, 20)}…" is longer than 63 octets`;
  }
  return undefined;
}

/** The system's resolvers: /etc/resolv.conf nameserver lines, else node:dns getServers(). */
export function systemServers(): Required<DnsServer>[] {
  const out: Required<DnsServer>[] = [];
  try {
    for (const line of readFileSync('/etc/resolv.conf', 'utf8').split('\n')) {
      const m = /^\s*nameserver\s+(\S+)/.exec(line);
      if (m) out.push({ host: m[1].replace(/%.*$/, ''), port: 53 });
    }
  } catch {
    // no resolv.conf (Windows, containers): fall back to what node:dns knows
  }
  if (out.length === 0) for (const s of getServers()) out.push(parseServer(s));
  if (out.length === 0) out.push({ host: '127.0.0.1', port: 53 });
  return out;
}

/** Parses "HOST", "HOST:PORT", "[v6]:PORT" or a bare IPv6 address into a server. */
export function parseServer(text: string): Required<DnsServer> {
  const s = text.trim();
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(s);
  if (bracket) return { host: bracket[1], port: bracket[2] ? Number(bracket[2]) : 53 };
  if ((s.match(/:/g) ?? []).length > 1) return { host: s, port: 53 }; // bare IPv6
  const m = /^([^:]+)(?::(\d+))?$/.exec(s);
  if (!m) throw new Error(`"${text}" is not HOST[:PORT]`);
  const port = m[2] ? Number(m[2]) : 53;
  if (!(port > 0 && port < 65536)) throw new Error(`"${text}": port must be 1-65535`);
  return { host: m[1], port };
}

export function createDnsClient(options: DnsClientOptions = {}): DnsClient {
  const servers = (options.servers && options.servers.length > 0 ? options.servers : systemServers()).map((s) => ({ host: s.host, port: s.port ?? 53 }));
  const timeoutMs = options.timeoutMs ?? 2000;
  const retries = options.retries ?? 1;

  async function query(name: string, type: DnsType): Promise<DnsAnswer> {
    const base = { name, type, answers: [], authority: [], authoritative: false, viaTcp: false, size: 0 };
    const bad = badNameReason(name);
    if (bad) return { ...base, rcode: 'BADNAME', server: '', error: `cannot query "${name}": ${bad}` };
    let last: DnsAnswer | undefined;
    for (const server of servers) {
      for (let attempt = 0; attempt <= retries; attempt++) {
        last = await askServer(server, name, type, timeoutMs);
        if (last.rcode !== 'TIMEOUT') break;
      }
      if (last && !['TIMEOUT', 'NETERROR', 'SERVFAIL', 'REFUSED'].includes(last.rcode)) return last;
    }
    return last!;
  }
  return { servers, query };
}

/** One question to one server: UDP first, TCP when the reply is truncated. */
async function askServer(server: Required<DnsServer>, name: string, type: DnsType, timeoutMs: number): Promise<DnsAnswer> {
  const where = `${server.host.includes(':') ? `[${server.host}]` : server.host}:${server.port}`;
  const id = randomInt(0, 65536);
  const request = dnsPacket.encode({
    type: 'query', id, flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type: type as never, name, class: 'IN' }],
  });
  const base = { name, type, answers: [], authority: [], authoritative: false, viaTcp: false, size: 0, server: where };
  try {
    let reply = await udpExchange(server, request, id, timeoutMs);
    let viaTcp = false;
    if (reply && (dnsPacket.decode(reply).flags ?? 0) & dnsPacket.TRUNCATED_RESPONSE) {
      reply = await tcpExchange(server, request, id, timeoutMs);
      viaTcp = true;
    }
    if (!reply) return { ...base, rcode: 'TIMEOUT', error: `no reply from ${where} within ${timeoutMs} ms` };
    return { ...toAnswer(name, type, reply, where), viaTcp };
  } catch (err) {
    return { ...base, rcode: 'NETERROR', error: `${where}: ${(err as Error).message}` };
  }
}

function udpExchange(server: Required<DnsServer>, request: Buffer, id: number, timeoutMs: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket(net.isIPv6(server.host) ? 'udp6' : 'udp4');
    const done = (fn: () => void): void => { clearTimeout(timer); socket.close(); fn(); };
    const timer = setTimeout(() => done(() => resolve(undefined)), timeoutMs);
    socket.on('error', (err) => done(() => reject(err)));
    socket.on('message', (msg) => {
      // ignore stray datagrams that are not the reply to our question
      if (msg.length >= 2 && msg.readUInt16BE(0) === id) done(() => resolve(msg));
    });
    socket.send(request, server.port, server.host);
  });
}

function tcpExchange(server: Required<DnsServer>, request: Buffer, id: number, timeoutMs: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: server.host, port: server.port });
    let buffered = Buffer.alloc(0);
    const done = (fn: () => void): void => { clearTimeout(timer); socket.destroy(); fn(); };
    const timer = setTimeout(() => done(() => resolve(undefined)), timeoutMs);
    socket.on('error', (err) => done(() => reject(err)));
    socket.on('connect', () => {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(request.length);
      socket.write(Buffer.concat([len, request]));
    });
    socket.on('data', (chunk) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
        const msg = buffered.subarray(2, 2 + buffered.readUInt16BE(0));
        if (msg.readUInt16BE(0) === id) done(() => resolve(msg));
        else done(() => reject(new Error('TCP reply with a foreign id')));
      }
    });
    socket.on('end', () => done(() => resolve(undefined)));
  });
}

const RCODES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'];

function toAnswer(name: string, type: DnsType, reply: Buffer, server: string): Omit<DnsAnswer, 'viaTcp'> {
  const packet = dnsPacket.decode(reply);
  const rcodeNumber = (packet.flags ?? 0) & 0x0f;
  return {
    name, type, server, size: reply.length,
    rcode: RCODES[rcodeNumber] ?? `RCODE${rcodeNumber}`,
    authoritative: ((packet.flags ?? 0) & dnsPacket.AUTHORITATIVE_ANSWER) !== 0,
    answers: (packet.answers ?? []).map(toRecord),
    authority: (packet.authorities ?? []).map(toRecord),
  };
}

function toRecord(a: dnsPacket.Answer): DnsRecord {
  const ttl = 'ttl' in a && typeof a.ttl === 'number' ? a.ttl : 0;
  const data = (a as { data?: unknown }).data;
  if ((a.type as string) === 'SPF') {
    // dns-packet has no codec for type 99: its rdata arrives raw, the same layout as TXT
    const strings = characterStrings(Buffer.isBuffer(data) ? data : Buffer.alloc(0));
    return { name: a.name, type: 'SPF', ttl, data: strings.join(''), strings };
  }
  switch (a.type) {
    case 'TXT': {
      const parts = (Array.isArray(data) ? data : [data]).filter((d) => d !== undefined);
      const strings = parts.map((d) => (Buffer.isBuffer(d) ? d.toString('utf8') : String(d)));
      return { name: a.name, type: 'TXT', ttl, data: strings.join(''), strings };
    }
    case 'MX': {
      const mx = data as { preference: number; exchange: string };
      return { name: a.name, type: 'MX', ttl, data: { preference: mx.preference, exchange: mx.exchange } };
    }
    case 'SRV': {
      const s = data as SrvData;
      return { name: a.name, type: 'SRV', ttl, data: { priority: s.priority, weight: s.weight, port: s.port, target: s.target } };
    }
    case 'SOA':
      return { name: a.name, type: 'SOA', ttl, data: data as SoaData };
    case 'A':
    case 'AAAA':
    case 'CNAME':
    case 'PTR':
    case 'NS':
      return { name: a.name, type: a.type, ttl, data: String(data) };
    default:
      return { name: a.name, type: a.type, ttl, data };
  }
}

/** Commander collector for a repeatable `--resolver HOST[:PORT]` option (validates as it goes). */
export function collectResolver(value: string, previous: DnsServer[] = []): DnsServer[] {
  return [...previous, parseServer(value)];
}

/** Splits raw TXT-layout rdata into its character-strings. */
function characterStrings(rdata: Buffer): string[] {
  const out: string[] = [];
  for (let i = 0; i < rdata.length; ) {
    const len = rdata[i];
    out.push(rdata.subarray(i + 1, i + 1 + len).toString('utf8'));
    i += 1 + len;
  }
  return out;
}
