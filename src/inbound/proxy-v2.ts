/**
 * PROXY protocol version 2 (the binary header; HAProxy's `send-proxy-v2`, and the only version AWS
 * Network Load Balancers and several cloud load balancers send). smtp-server reads version 1 (the
 * text line) only; connection.ts reads this one first and hands anything else to the library.
 *
 * Layout (haproxy.org/download/2.9/doc/proxy-protocol.txt §2.2): a 12-octet signature, one octet of
 * version (2) and command (0 LOCAL, 1 PROXY), one octet of address family and transport, a 16-bit
 * length of what follows, then the addresses (and optional TLVs, skipped here). LOCAL (the balancer's
 * own health check) and UNSPEC mean "use the connection's own addresses".
 */
import ipaddr from 'ipaddr.js';

export const PROXY_V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

/** Longest header accepted (addresses and TLVs): HAProxy's own limit for what it sends is far below. */
export const PROXY_V2_MAX_LENGTH = 16 + 1024;

export type ProxyV2Header =
  | { kind: 'incomplete'; need: number }
  | { kind: 'invalid'; reason: string }
  /** Keep the connection's own addresses (LOCAL command, or UNSPEC family). */
  | { kind: 'local'; length: number }
  | { kind: 'proxy'; length: number; address: string; port: number };

/** True when `buf` starts like a version 2 header (as far as it goes). */
export function looksLikeProxyV2(buf: Buffer): boolean {
  const n = Math.min(buf.length, PROXY_V2_SIGNATURE.length);
  return n > 0 && buf.subarray(0, n).equals(PROXY_V2_SIGNATURE.subarray(0, n));
}

/** Parses a version 2 header at the start of `buf`; `length` is the number of octets it takes. */
export function parseProxyV2(buf: Buffer): ProxyV2Header {
  if (buf.length < 16) return { kind: 'incomplete', need: 16 };
  if (!buf.subarray(0, 12).equals(PROXY_V2_SIGNATURE)) return { kind: 'invalid', reason: 'not a PROXY protocol v2 signature' };
  const version = buf[12] >> 4;
  const command = buf[12] & 0x0f;
  if (version !== 2) return { kind: 'invalid', reason: `PROXY protocol version ${version}` };
  if (command > 1) return { kind: 'invalid', reason: `unknown PROXY v2 command ${command}` };
  const length = 16 + buf.readUInt16BE(14);
  if (length > PROXY_V2_MAX_LENGTH) return { kind: 'invalid', reason: `PROXY v2 header of ${length} octets` };
  if (buf.length < length) return { kind: 'incomplete', need: length };
  const family = buf[13] >> 4;
  const transport = buf[13] & 0x0f;
  if (command === 0 || family === 0) return { kind: 'local', length };
  if (transport !== 1) return { kind: 'invalid', reason: 'PROXY v2 header for a transport other than TCP' };
  const body = buf.subarray(16, length);
  if (family === 1 && body.length >= 12) {
    return { kind: 'proxy', length, address: ipaddr.fromByteArray([...body.subarray(0, 4)]).toString(), port: body.readUInt16BE(8) };
  }
  if (family === 2 && body.length >= 36) {
    const v6 = ipaddr.fromByteArray([...body.subarray(0, 16)]) as ipaddr.IPv6;
    // an IPv4 client seen through an IPv6 socket of the balancer: the relay's lists match it as IPv4
    const address = v6.isIPv4MappedAddress() ? v6.toIPv4Address().toString() : v6.toString();
    return { kind: 'proxy', length, address, port: body.readUInt16BE(32) };
  }
  return { kind: 'invalid', reason: family === 3 ? 'PROXY v2 header for a UNIX socket' : 'PROXY v2 addresses cut short' };
}
