import { test } from 'node:test';
import assert from 'node:assert/strict';
import { accessSchema } from '../../src/config/sections/access.ts';
import { checkConnection, checkRelay, compileAccess } from '../../src/inbound/access-policy.ts';

const access = compileAccess(accessSchema.parse({
  connection: { mode: 'only', list: ['127.0.0.0/29', '192.168.10.0/24', 'fd00::/8'] },
  relay: { mode: 'only', list: ['127.0.0.1', '192.168.10.50'] },
  localDomains: ['example.org'],
}));

test('connection control: "only the list below" with single addresses and CIDR, IPv4-mapped IPv6 as IPv4', () => {
  for (const ok of ['127.0.0.1', '127.0.0.7', '192.168.10.200', '::ffff:192.168.10.9', 'fd00::25']) assert.equal(checkConnection(access, ok).verdict, 'accept', ok);
  for (const bad of ['127.0.0.8', '192.168.11.1', '10.0.0.1', '::1', 'fe80::1']) assert.equal(checkConnection(access, bad).verdict, 'reject', bad);
  const except = compileAccess(accessSchema.parse({ connection: { mode: 'all-except', list: ['10.0.0.0/8'] } }));
  assert.equal(checkConnection(except, '10.1.2.3').verdict, 'reject');
  assert.equal(checkConnection(except, '11.1.2.3').verdict, 'accept');
});

test('relay: listed clients and authenticated users may send anywhere', () => {
  assert.equal(checkRelay(access, { clientAddress: '192.168.10.50', recipient: 'anyone@gmail.com' }).verdict, 'accept');
  assert.equal(checkRelay(access, { clientAddress: '::ffff:127.0.0.1', recipient: 'anyone@gmail.com' }).verdict, 'accept');
  assert.equal(checkRelay(access, { clientAddress: '192.168.10.51', user: 'scanner', recipient: 'anyone@gmail.com' }).verdict, 'accept');
  const noAuthRelay = compileAccess(accessSchema.parse({ relayForAuthenticated: false }));
  assert.equal(checkRelay(noAuthRelay, { clientAddress: '192.168.10.51', user: 'scanner', recipient: 'anyone@gmail.com' }).verdict, 'reject');
});

test('relay: unlisted clients reach only local domains, by exact match; the open-relay tricks never pass', () => {
  const from = '192.168.10.51';
  for (const ok of ['user@example.org', 'User@EXAMPLE.ORG', 'user@example.org.']) {
    assert.equal(checkRelay(access, { clientAddress: from, recipient: ok }).verdict, 'accept', ok);
  }
  const tricks = [
    'victim@gmail.com',
    'user%victim.com@example.org', // percent hack
    'victim.com!user@example.org', // bang path
    'victim.com!user', // bare bang path
    '"user@victim.com"@example.org', // quoted @
    '"user%victim.com"@example.org', // quoted %
    'user@victim.com@example.org', // double @
    'user@evilexample.org', // look-alike (suffix)
    'user@example.org.evil.example', // look-alike (prefix)
    'user@sub.example.org', // subdomain not listed
    'user@[127.0.0.1]', // IP literal
    'user@[IPv6:::1]',
    'postmaster', // no domain
  ];
  for (const trick of tricks) {
    const d = checkRelay(access, { clientAddress: from, recipient: trick });
    assert.equal(d.verdict, 'reject', trick);
    assert.ok(d.verdict === 'reject' && d.code === 554 && d.status === '5.7.1');
  }
});

test('relay "all except the list below"', () => {
  const a = compileAccess(accessSchema.parse({ relay: { mode: 'all-except', list: ['192.168.10.0/24'] } }));
  assert.equal(checkRelay(a, { clientAddress: '192.168.10.5', recipient: 'x@gmail.com' }).verdict, 'reject');
  assert.equal(checkRelay(a, { clientAddress: '192.168.20.5', recipient: 'x@gmail.com' }).verdict, 'accept');
});
