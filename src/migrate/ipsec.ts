/**
 * Decoder for the IIS 6 metabase IPSECLIST binary values: `IPSecurity` (Access → Connection
 * control) and `RelayIpList` (Access → Relay restrictions), hex-encoded in MetaBase.xml.
 *
 * Microsoft documents the meaning (IIsIPSecurity: GrantByDefault, IPGrant/IPDeny as "address,
 * mask", DomainGrant/DomainDeny; https://learn.microsoft.com/previous-versions/iis/6.0-sdk/ms524685(v=vs.90),
 * RelayIpList ID 36970 https://learn.microsoft.com/previous-versions/windows/it-pro/windows-server-2003/cc780293(v=ws.10))
 * but not the byte layout. The layout below is the one public scripts read and write (saltstack's
 * win_smtp_server module, PowerShell "SMTP Relay IPGrant" scripts, MetaBase.xml audit scripts;
 * see test/fixtures/iis/README.md). All numbers are little-endian DWORDs; a "self-relative index"
 * is an offset from the start of the value with the high bit set (0x80000000 | offset):
 *
 *   0  iDenyAddr   → ADDRESS_HEADER of the deny list
 *   4  iGrantAddr  → ADDRESS_HEADER of the grant list
 *   8  iDenyName   → NAME_HEADER of the denied domain names
 *  12  iGrantName  → NAME_HEADER of the granted domain names
 *  16  flags, 20 size of the fixed part (not needed to decode)
 *  ADDRESS_HEADER   { cEntries, cAddresses } followed by cEntries ADDRESS_LIST_ENTRY:
 *  ADDRESS_LIST_ENTRY { family (2 = IPv4), count, cFullBytes, lastByte, iFirst } where iFirst points
 *                   at the entry's subnet mask, followed by its addresses (4 bytes each, network
 *                   order). `count` counts the mask too: one mask + count-1 addresses; the header's
 *                   cAddresses is the number of addresses. Entries group addresses by mask.
 *  NAME_HEADER      { cEntries, cNames } followed by NAME_LIST_ENTRY { cComponents, cNames,
 *                   iName[cNames] }, each iName pointing at a NUL-terminated name.
 *
 * Grant-by-default ("All except the list below") is not a flag: it holds when the grant lists are
 * empty. "Only the list below" with nothing listed is written by IIS as a grant entry for 0.0.0.0
 * (mask 255.255.255.255) that no client can match. An empty value (zero bytes) grants everyone.
 * Every count and offset is checked, so a value that does not follow this layout is refused with
 * the reason rather than read wrongly.
 */

export interface IpEntry {
  address: string;
  mask: string;
  /** The entry as smarthost writes it: a single address, or network/prefix. */
  range: string;
}

export interface IpSecList {
  /** true: everyone except `deny` / `denyNames` ("All except the list below"). */
  grantByDefault: boolean;
  grant: IpEntry[];
  deny: IpEntry[];
  grantNames: string[];
  denyNames: string[];
  /** The value had no bytes at all (IIS: nothing restricted). */
  empty: boolean;
}

export class IpSecError extends Error {}

const SELF_REL = 0x80000000;
const AF_INET = 2;

export function decodeIpSecList(buf: Uint8Array): IpSecList {
  const data = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (data.length === 0) return { grantByDefault: true, grant: [], deny: [], grantNames: [], denyNames: [], empty: true };
  const u32 = (off: number, what: string): number => {
    if (off + 4 > data.length) throw new IpSecError(`${what} at byte ${off} lies beyond the end of the value (${data.length} bytes)`);
    return data.readUInt32LE(off);
  };
  const ref = (off: number, what: string, need: number): number => {
    const v = u32(off, what);
    if ((v & SELF_REL) === 0) throw new IpSecError(`${what} (byte ${off}) is 0x${v.toString(16)}, not a self-relative offset`);
    const to = v & ~SELF_REL;
    if (to + need > data.length) throw new IpSecError(`${what} points to byte ${to}, beyond the end of the value (${data.length} bytes)`);
    return to;
  };
  if (data.length < 24) throw new IpSecError(`the value is ${data.length} bytes long; an IP list has a 24-byte header`);

  const addresses = (headerRefAt: number, which: string): IpEntry[] => {
    const h = ref(headerRefAt, `the ${which} address list`, 8);
    const cEntries = u32(h, `${which} entry count`);
    const cAddresses = u32(h + 4, `${which} address count`);
    if (cEntries > 4096) throw new IpSecError(`${which} list claims ${cEntries} entries`);
    const out: IpEntry[] = [];
    for (let i = 0; i < cEntries; i++) {
      const e = h + 8 + i * 20;
      const family = u32(e, `${which} entry ${i + 1} family`);
      if (family !== AF_INET) throw new IpSecError(`${which} entry ${i + 1} has address family ${family}; only IPv4 (2) is known`);
      const count = u32(e + 4, `${which} entry ${i + 1} count`);
      if (count < 1 || count > 65536) throw new IpSecError(`${which} entry ${i + 1} has a count of ${count}`);
      const first = ref(e + 16, `${which} entry ${i + 1} addresses`, 4 * count);
      const mask = ipv4(data, first);
      const prefix = maskPrefix(mask);
      if (prefix === undefined) throw new IpSecError(`${which} entry ${i + 1} has the subnet mask ${mask}, which is not contiguous`);
      for (let k = 1; k < count; k++) {
        const address = ipv4(data, first + 4 * k);
        out.push({ address, mask, range: toRange(address, prefix) });
      }
    }
    if (out.length !== cAddresses) throw new IpSecError(`${which} list says ${cAddresses} address(es) but its entries hold ${out.length}`);
    return out;
  };

  const names = (headerRefAt: number, which: string): string[] => {
    const h = ref(headerRefAt, `the ${which} domain-name list`, 8);
    const cEntries = u32(h, `${which} name entry count`);
    const cNames = u32(h + 4, `${which} name count`);
    if (cEntries > 4096) throw new IpSecError(`${which} name list claims ${cEntries} entries`);
    const out: string[] = [];
    let e = h + 8;
    for (let i = 0; i < cEntries; i++) {
      const n = u32(e + 4, `${which} name entry ${i + 1} count`);
      if (n > 65536) throw new IpSecError(`${which} name entry ${i + 1} claims ${n} names`);
      for (let k = 0; k < n; k++) {
        const at = ref(e + 8 + 4 * k, `${which} name ${k + 1}`, 1);
        const end = data.indexOf(0, at);
        if (end < 0) throw new IpSecError(`${which} name at byte ${at} has no terminating NUL`);
        out.push(data.subarray(at, end).toString('latin1'));
      }
      e += 8 + 4 * n;
    }
    if (out.length !== cNames) throw new IpSecError(`${which} name list says ${cNames} name(s) but its entries hold ${out.length}`);
    return out;
  };

  const deny = addresses(0, 'deny');
  const grant = addresses(4, 'grant');
  const denyNames = names(8, 'deny');
  const grantNames = names(12, 'grant');
  return { grantByDefault: grant.length === 0 && grantNames.length === 0, grant, deny, grantNames, denyNames, empty: false };
}

/** Parses MetaBase.xml's hex text (whitespace allowed between digits). Throws IpSecError. */
export function parseHex(text: string): Buffer {
  const clean = text.replace(/\s+/g, '');
  const bad = /[^0-9a-fA-F]/.exec(clean);
  if (bad) throw new IpSecError(`"${bad[0]}" at hex digit ${bad.index + 1} is not a hex digit`);
  if (clean.length % 2) throw new IpSecError(`${clean.length} hex digits: an odd number cannot be whole bytes`);
  return Buffer.from(clean, 'hex');
}

function ipv4(b: Buffer, off: number): string {
  return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
}

/** 255.255.255.0 → 24; undefined for a mask whose ones are not contiguous. */
export function maskPrefix(mask: string): number | undefined {
  const bits = mask.split('.').map((o) => Number(o).toString(2).padStart(8, '0')).join('');
  const m = /^(1*)0*$/.exec(bits);
  return m ? m[1].length : undefined;
}

function toRange(address: string, prefix: number): string {
  if (prefix === 32) return address;
  const n = address.split('.').reduce((acc, o) => (acc * 256) + Number(o), 0);
  const net = prefix === 0 ? 0 : Math.floor(n / 2 ** (32 - prefix)) * 2 ** (32 - prefix);
  return `${[24, 16, 8, 0].map((s) => Math.floor(net / 2 ** s) % 256).join('.')}/${prefix}`;
}
