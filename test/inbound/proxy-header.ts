// Builds PROXY protocol v2 headers as HAProxy and cloud load balancers send them (for tests).
import { PROXY_V2_SIGNATURE } from '../../src/inbound/proxy-v2.ts';

/** A v2 header: command (0 LOCAL, 1 PROXY), family/transport octet, address block, extra TLV octets. */
export function proxyV2(command: number, familyTransport: number, addresses: Buffer, tlv = Buffer.alloc(0), version = 2): Buffer {
  const head = Buffer.alloc(4);
  head[0] = (version << 4) | command;
  head[1] = familyTransport;
  head.writeUInt16BE(addresses.length + tlv.length, 2);
  return Buffer.concat([PROXY_V2_SIGNATURE, head, addresses, tlv]);
}

export function tcp4(src: string, dst: string, sport: number, dport: number): Buffer {
  const b = Buffer.alloc(12);
  src.split('.').forEach((o, i) => { b[i] = Number(o); });
  dst.split('.').forEach((o, i) => { b[4 + i] = Number(o); });
  b.writeUInt16BE(sport, 8);
  b.writeUInt16BE(dport, 10);
  return b;
}

export function tcp6(src: number[], sport: number): Buffer {
  const b = Buffer.alloc(36);
  Buffer.from(src).copy(b, 0);
  b[31] = 1; // ::1 as destination
  b.writeUInt16BE(sport, 32);
  b.writeUInt16BE(25, 34);
  return b;
}
