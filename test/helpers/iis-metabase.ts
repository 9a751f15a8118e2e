/**
 * Builds IIS 6 IPSECLIST values (IPSecurity / RelayIpList) and MetaBase.xml text for tests, from
 * the layout described in src/migrate/ipsec.ts (written independently of the decoder: it lays the
 * structure out forwards, the decoder follows offsets). Checked against a value IIS itself wrote
 * (test/migrate/ipsec.test.ts), so the decoder is not only tested against this encoder.
 */

export interface IpSecSpec {
  /** "Only the list below": [address, mask] pairs. */
  grant?: Array<[string, string]>;
  /** "All except the list below": [address, mask] pairs. */
  deny?: Array<[string, string]>;
  grantNames?: string[];
  denyNames?: string[];
}

const octets = (ip: string) => ip.split('.').map(Number);

export function encodeIpSecList(spec: IpSecSpec): Buffer {
  const groups = (pairs: Array<[string, string]> = []) => {
    const byMask = new Map<string, string[]>();
    for (const [a, m] of pairs) byMask.set(m, [...(byMask.get(m) ?? []), a]);
    return [...byMask.entries()];
  };
  const deny = groups(spec.deny);
  const grant = groups(spec.grant);
  const denyNames = spec.denyNames ?? [];
  const grantNames = spec.grantNames ?? [];
  // Fixed part: 24-byte header, two address headers with 20-byte entries, two name headers with
  // one entry each holding all names (8 + 4 per name).
  const denyAt = 24;
  const grantAt = denyAt + 8 + 20 * deny.length;
  const denyNameAt = grantAt + 8 + 20 * grant.length;
  const grantNameAt = denyNameAt + 8 + (denyNames.length ? 8 + 4 * denyNames.length : 0);
  const fixed = grantNameAt + 8 + (grantNames.length ? 8 + 4 * grantNames.length : 0);
  const refBytes = [...deny, ...grant].reduce((n, [, addrs]) => n + 4 + 4 * addrs.length, 0)
    + [...denyNames, ...grantNames].reduce((n, s) => n + s.length + 1, 0);
  const b = Buffer.alloc(fixed + refBytes);
  const SELF = 0x80000000;
  b.writeUInt32LE((SELF | denyAt) >>> 0, 0);
  b.writeUInt32LE((SELF | grantAt) >>> 0, 4);
  b.writeUInt32LE((SELF | denyNameAt) >>> 0, 8);
  b.writeUInt32LE((SELF | grantNameAt) >>> 0, 12);
  b.writeUInt32LE(1, 16);
  b.writeUInt32LE(fixed, 20);
  let ref = fixed;
  const addrList = (at: number, list: Array<[string, string[]]>) => {
    b.writeUInt32LE(list.length, at);
    b.writeUInt32LE(list.reduce((n, [, a]) => n + a.length, 0), at + 4);
    list.forEach(([mask, addrs], i) => {
      const e = at + 8 + 20 * i;
      const m = octets(mask);
      const full = m.findIndex((o) => o !== 255);
      b.writeUInt32LE(2, e);
      b.writeUInt32LE(addrs.length + 1, e + 4);
      b.writeUInt32LE(full < 0 ? 4 : full, e + 8);
      b.writeUInt32LE(full < 0 ? 0 : m[full], e + 12);
      b.writeUInt32LE((SELF | ref) >>> 0, e + 16);
      for (const ip of [mask, ...addrs]) {
        Buffer.from(octets(ip)).copy(b, ref);
        ref += 4;
      }
    });
  };
  const nameList = (at: number, names: string[]) => {
    b.writeUInt32LE(names.length ? 1 : 0, at);
    b.writeUInt32LE(names.length, at + 4);
    if (!names.length) return;
    b.writeUInt32LE(names[0].split('.').length, at + 8);
    b.writeUInt32LE(names.length, at + 12);
    names.forEach((n, i) => {
      b.writeUInt32LE((SELF | ref) >>> 0, at + 16 + 4 * i);
      b.write(n, ref, 'latin1');
      ref += n.length + 1;
    });
  };
  addrList(denyAt, deny);
  addrList(grantAt, grant);
  nameList(denyNameAt, denyNames);
  nameList(grantNameAt, grantNames);
  return b;
}

export const hex = (b: Buffer) => b.toString('hex').toUpperCase();

/** One metabase element in MetaBase.xml's own layout (tab-indented attributes, one per line). */
export function element(tag: string, location: string, props: Record<string, string>): string {
  const attrs = Object.entries(props).map(([k, v]) => `\t\t${k}="${v}"`).join('\n');
  return `<${tag}\tLocation ="${location}"\n${attrs}\n\t>\n</${tag}>`;
}

export function metabase(elements: string[]): string {
  return [
    '<?xml version ="1.0"?>',
    '<configuration xmlns="urn:microsoft-catalog:XML_Metabase_V64_0">',
    '<MBProperty>',
    element('IIS_Global', '.', { SessionKey: '496344627000000024000000010000000180000000000000' }),
    element('IIsComputer', '/LM', { EnableEditWhileRunning: '0', EnableHistory: '1', MaxHistoryFiles: '10' }),
    ...elements,
    '</MBProperty>',
    '</configuration>',
    '',
  ].join('\r\n');
}
