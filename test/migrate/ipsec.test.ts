// The IPSECLIST decoder (IPSecurity / RelayIpList), checked against values IIS wrote (as published
// by others), against the test encoder, and against damaged values.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeIpSecList, IpSecError, maskPrefix, parseHex } from '../../src/migrate/ipsec.ts';
import { encodeIpSecList, hex } from '../helpers/iis-metabase.ts';

const dotted = (quads: string[]) => Buffer.from(quads.flatMap((q) => q.split('.').map(Number)));

// saltstack/salt, salt/modules/win_smtp_server.py, set_relay_ip_list docstring: "setting
// '127.0.0.1' as an allowed relay IP through the GUI would generate an actual relay IP list
// similar to the following" — WMI's RelayIpList bytes, four per dotted quad.
const SALT_GUI_127_0_0_1 = ['24.0.0.128', '32.0.0.128', '60.0.0.128', '68.0.0.128', '1.0.0.0', '76.0.0.0',
  '0.0.0.0', '0.0.0.0', '1.0.0.0', '1.0.0.0', '2.0.0.0', '2.0.0.0', '4.0.0.0',
  '0.0.0.0', '76.0.0.128', '0.0.0.0', '0.0.0.0', '0.0.0.0', '0.0.0.0',
  '255.255.255.255', '127.0.0.1'];

test('a RelayIpList the IIS GUI wrote (published by saltstack) decodes to "only 127.0.0.1"', () => {
  const r = decodeIpSecList(dotted(SALT_GUI_127_0_0_1));
  assert.equal(r.grantByDefault, false);
  assert.deepEqual(r.grant.map((e) => e.range), ['127.0.0.1']);
  assert.deepEqual(r.deny, []);
  // The test encoder lays out the same bytes, so fixtures built with it are what IIS writes.
  assert.deepEqual(encodeIpSecList({ grant: [['127.0.0.1', '255.255.255.255']] }), dotted(SALT_GUI_127_0_0_1));
});

test('the "SMTP Relay IPGrant" PowerShell template (+2 at bytes 36 and 44, two addresses appended) decodes', () => {
  // Public PowerShell script: a 20-DWORD template with 0 at byte 36 and 1 at byte 44, both raised
  // by the number of addresses appended after the 255.255.255.255 mask.
  const template = [24, 0, 0, 128, 32, 0, 0, 128, 60, 0, 0, 128, 68, 0, 0, 128, 1, 0, 0, 0, 76, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 76, 0, 0, 128, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255];
  template[36] += 2;
  template[44] += 2;
  const r = decodeIpSecList(Buffer.from([...template, 127, 0, 0, 1, 192, 168, 0, 10]));
  assert.deepEqual(r.grant.map((e) => e.range), ['127.0.0.1', '192.168.0.10']);
});

test('the encoder matches the fragments a MetaBase.xml audit script documents for IPSecurity', () => {
  // Audit script notes (IIS 6 MetaBase.xml): deny list → "18000080340000803c…", grant list →
  // "18000080200000803c…ffffffffc0a8ab01c0a8ab02" for 192.168.171.1 and .2, and "only the list
  // below" with nothing listed → "…ffffffff00000000" (a 0.0.0.0 entry).
  const ONE = '255.255.255.255';
  assert.match(hex(encodeIpSecList({ deny: [['10.0.0.1', ONE]] })), /^18000080340000803C/);
  const g = hex(encodeIpSecList({ grant: [['192.168.171.1', ONE], ['192.168.171.2', ONE]] }));
  assert.match(g, /^18000080200000803C/);
  assert.match(g, /FFFFFFFFC0A8AB01C0A8AB02$/);
  const none = decodeIpSecList(encodeIpSecList({ grant: [['0.0.0.0', ONE]] }));
  assert.equal(none.grantByDefault, false);
  assert.match(hex(encodeIpSecList({ grant: [['0.0.0.0', ONE]] })), /FFFFFFFF00000000$/);
});

test('deny lists, subnet masks and domain names', () => {
  const r = decodeIpSecList(encodeIpSecList({
    deny: [['10.1.2.77', '255.255.255.0'], ['172.16.0.0', '255.240.0.0'], ['127.0.0.4', '255.255.255.255'], ['10.9.9.9', '255.255.255.0']],
    denyNames: ['printers.example.com', 'bad.example.org'],
  }));
  assert.equal(r.grantByDefault, true);
  // Grouped by mask as IIS stores them; host bits of an address+mask entry are dropped.
  assert.deepEqual(r.deny.map((e) => e.range).sort(), ['10.1.2.0/24', '10.9.9.0/24', '127.0.0.4', '172.16.0.0/12']);
  assert.deepEqual(r.denyNames, ['printers.example.com', 'bad.example.org']);
  assert.deepEqual(decodeIpSecList(encodeIpSecList({ grant: [['10.0.0.0', '255.0.0.0']], grantNames: ['ok.example.com'] })).grantNames, ['ok.example.com']);
});

test('an empty value grants everyone; masks must be contiguous', () => {
  assert.deepEqual(decodeIpSecList(Buffer.alloc(0)), { grantByDefault: true, grant: [], deny: [], grantNames: [], denyNames: [], empty: true });
  assert.equal(maskPrefix('255.255.252.0'), 22);
  assert.equal(maskPrefix('0.0.0.0'), 0);
  assert.equal(maskPrefix('255.0.255.0'), undefined);
  assert.throws(() => decodeIpSecList(encodeIpSecList({ grant: [['10.0.0.0', '255.0.255.0']] })), /not contiguous/);
});

test('damaged values are refused with the reason, never half-read', () => {
  const good = encodeIpSecList({ grant: [['192.168.1.50', '255.255.255.255'], ['192.168.1.51', '255.255.255.255']] });
  assert.throws(() => decodeIpSecList(good.subarray(0, good.length - 4)), (e: Error) => e instanceof IpSecError && /beyond the end/.test(e.message));
  assert.throws(() => decodeIpSecList(good.subarray(0, 10)), /24-byte header/);
  const badCount = Buffer.from(good);
  badCount.writeUInt32LE(3, 36); // header says 3 addresses, the entry holds 2
  assert.throws(() => decodeIpSecList(badCount), /says 3 address\(es\) but its entries hold 2/);
  const notRef = Buffer.from(good);
  notRef.writeUInt32LE(24, 0);
  assert.throws(() => decodeIpSecList(notRef), /not a self-relative offset/);
  const v6 = Buffer.from(good);
  v6.writeUInt32LE(23, 40);
  assert.throws(() => decodeIpSecList(v6), /address family 23/);
  assert.throws(() => parseHex('18000080ZZ'), /"Z" at hex digit 9/);
  assert.throws(() => parseHex('180'), /odd number/);
  assert.deepEqual(parseHex('18 00\n00 80'), Buffer.from([0x18, 0, 0, 0x80]));
});

test('a damaged value gives an IpSecError or well-formed entries, never a crash', () => {
  const good = encodeIpSecList({ grant: [['192.168.1.50', '255.255.255.255'], ['10.0.0.0', '255.0.0.0']], grantNames: ['a.example'] });
  let seed = 12345;
  const rnd = () => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed; };
  let refused = 0;
  for (let i = 0; i < 3000; i++) {
    const b = Buffer.from(good);
    const flips = 1 + (rnd() % 3);
    for (let k = 0; k < flips; k++) b[rnd() % b.length] = rnd() % 256;
    const cut = rnd() % 4 === 0 ? b.subarray(0, rnd() % b.length) : b;
    try {
      const r = decodeIpSecList(cut);
      // What decodes must still be well-formed: dotted quads and valid prefixes.
      for (const e of [...r.grant, ...r.deny]) assert.match(e.range, /^\d{1,3}(\.\d{1,3}){3}(\/\d{1,2})?$/);
    } catch (e) {
      assert.ok(e instanceof IpSecError, `unexpected ${(e as Error).name}: ${(e as Error).message}`);
      refused++;
    }
  }
  assert.ok(refused > 0);
});
