// PROXY protocol v2 headers, parsed from bytes built as HAProxy and cloud load balancers send them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PROXY_V2_SIGNATURE, looksLikeProxyV2, parseProxyV2 } from '../../src/inbound/proxy-v2.ts';
import { proxyV2, tcp4, tcp6 } from './proxy-header.ts';

test('TCP over IPv4: the client address and port, and the header length (TLVs included)', () => {
  const tlv = Buffer.from([0x05, 0x00, 0x03, 0x61, 0x62, 0x63]); // PP2_TYPE_UNIQUE_ID "abc"
  const h = proxyV2(1, 0x11, tcp4('192.0.2.10', '10.0.0.5', 40000, 25), tlv);
  assert.deepEqual(parseProxyV2(Buffer.concat([h, Buffer.from('EHLO x\r\n')])), { kind: 'proxy', length: h.length, address: '192.0.2.10', port: 40000 });
});

test('TCP over IPv6, and an IPv4 client seen through an IPv6 socket, which becomes IPv4', () => {
  const v6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x42];
  assert.deepEqual(parseProxyV2(proxyV2(1, 0x21, tcp6(v6, 5555))), { kind: 'proxy', length: 52, address: '2001:db8::42', port: 5555 });
  const mapped = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 99];
  assert.equal((parseProxyV2(proxyV2(1, 0x21, tcp6(mapped, 1))) as { address: string }).address, '192.0.2.99');
});

test('LOCAL (the balancer\'s own health check) and UNSPEC keep the connection\'s addresses', () => {
  assert.deepEqual(parseProxyV2(proxyV2(0, 0x00, Buffer.alloc(0))), { kind: 'local', length: 16 });
  assert.deepEqual(parseProxyV2(proxyV2(0, 0x11, tcp4('1.2.3.4', '5.6.7.8', 1, 2))), { kind: 'local', length: 28 });
  assert.deepEqual(parseProxyV2(proxyV2(1, 0x00, Buffer.alloc(0))), { kind: 'local', length: 16 });
});

test('incomplete headers ask for more; wrong ones are refused with the reason', () => {
  const h = proxyV2(1, 0x11, tcp4('192.0.2.10', '10.0.0.5', 40000, 25));
  assert.deepEqual(parseProxyV2(h.subarray(0, 10)), { kind: 'incomplete', need: 16 });
  assert.deepEqual(parseProxyV2(h.subarray(0, 20)), { kind: 'incomplete', need: 28 });
  const cases: Array<[Buffer, RegExp]> = [
    [proxyV2(1, 0x11, tcp4('1.2.3.4', '5.6.7.8', 1, 2), undefined, 1), /version 1/],
    [proxyV2(2, 0x11, tcp4('1.2.3.4', '5.6.7.8', 1, 2)), /unknown PROXY v2 command 2/],
    [proxyV2(1, 0x12, tcp4('1.2.3.4', '5.6.7.8', 1, 2)), /other than TCP/],
    [proxyV2(1, 0x31, Buffer.alloc(216)), /UNIX socket/],
    [proxyV2(1, 0x11, Buffer.alloc(8)), /cut short/],
    [proxyV2(1, 0x21, Buffer.alloc(20)), /cut short/],
    [proxyV2(1, 0x11, Buffer.alloc(12), Buffer.alloc(2000)), /header of 2028 octets/],
    [Buffer.concat([Buffer.from('\r\n\r\n\0\r\nQUIZ\n'), Buffer.alloc(4)]), /not a PROXY protocol v2 signature/],
  ];
  for (const [buf, reason] of cases) {
    const r = parseProxyV2(buf);
    assert.equal(r.kind, 'invalid');
    assert.match((r as { reason: string }).reason, reason);
  }
});

test('a v2 header is told from a v1 line by its first octets', () => {
  assert.equal(looksLikeProxyV2(PROXY_V2_SIGNATURE.subarray(0, 3)), true);
  assert.equal(looksLikeProxyV2(Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n')), false);
  assert.equal(looksLikeProxyV2(Buffer.from('\r\n\r\nX')), false);
  assert.equal(looksLikeProxyV2(Buffer.alloc(0)), false);
});
