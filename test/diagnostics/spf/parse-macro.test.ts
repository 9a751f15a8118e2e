// The SPF parser (terms, qualifiers, CIDRs, errors with positions and suggestions) and macro
// expansion against the examples of RFC 7208 §7.4.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseRecord, parseTerm } from '../../../src/diagnostics/spf/parse.ts';
import { expandMacros, macroSyntaxError, domainSpecError, type MacroValues } from '../../../src/diagnostics/spf/macro.ts';

test('terms: qualifiers, names, values, dual CIDR, modifiers, offsets', () => {
  const r = parseRecord('v=spf1  -a:mail.example.com/24//64 ~mx ?include:_spf.example.net ip6:2001:db8::/32 redirect=_spf.example.com exp=why.%{d}');
  assert.equal(r.isSpf, true);
  assert.equal(r.firstError, undefined);
  const [a, mx, inc, ip6, redirect, exp] = r.terms;
  assert.deepEqual([a.qualifier, a.name, a.value, a.cidr4, a.cidr6, a.start], ['-', 'a', 'mail.example.com', 24, 64, 8]);
  assert.deepEqual([mx.qualifier, mx.name, mx.value, mx.qualifierWritten], ['~', 'mx', undefined, true]);
  assert.deepEqual([inc.qualifier, inc.name, inc.value], ['?', 'include', '_spf.example.net']);
  assert.deepEqual([ip6.qualifier, ip6.qualifierWritten, ip6.value, ip6.cidr4], ['+', false, '2001:db8::', 32]);
  assert.deepEqual([redirect.kind, redirect.name, redirect.value], ['modifier', 'redirect', '_spf.example.com']);
  assert.deepEqual([exp.kind, exp.name], ['modifier', 'exp']);
  assert.equal(r.record.slice(exp.start, exp.end), 'exp=why.%{d}');
  assert.equal(parseRecord('v=spf10 -all').isSpf, false);
  assert.equal(parseRecord('V=SPF1').isSpf, true);
});

test('syntax errors and the fixes suggested', () => {
  const cases: Array<[string, RegExp, RegExp?]> = [
    ['ipv4:192.0.2.1', /unknown mechanism "ipv4"/, /ip4/],
    ['ip:192.0.2.1', /unknown mechanism/, /ip4/],
    ['192.0.2.1', /without a mechanism/, /ip4:192\.0\.2\.1/],
    ['a:192.0.2.1', /host name, not an address/, /ip4:192\.0\.2\.1/],
    ['ip4:192.0.2', /not an IPv4 address/],
    ['ip4:192.0.2.1/33', /more than 32/],
    ['ip4:192.0.2.1/032', /not an IPv4 address.*leading zeros/],
    ['ip6:2001:db8::/129', /more than 128/],
    ['ip6', /not an IPv6 address/],
    ['ip4:192.0.2.1//64', /not a dual/],
    ['a/33', /more than 32/],
    ['mx//129', /more than 128/],
    ['ptr/24', /does not take a prefix/],
    ['-all:x', /all takes nothing/],
    ['exists', /needs a domain/],
    ['include', /needs a domain/],
    ['a:', /empty/],
    ['a:example.com:8080', /fully qualified/],
    ['mx:foo.123', /fully qualified/],
    ['a:localhost', /fully qualified/],
    ['=a', /not a qualifier/],
    ['a:mail.example.com,', /commas/],
    ['exists:%{z}.example.com', /not a macro letter/],
    ['exists:%{d0}.example.com', /must not be zero/],
    ['exists:%{d}%x.example.com', /"%x" is not a macro/],
    ['exists:%{c}.example.com', /only in explanation/],
    ['redirect=', /needs a domain/],
    ['redirect:example.com', /unknown mechanism "redirect"/, /redirect=/],
  ];
  for (const [text, error, suggestion] of cases) {
    const t = parseTerm(text, 7);
    assert.match(t.error ?? '(no error)', error, text);
    if (suggestion) assert.match(t.suggestion ?? '(none)', suggestion, text);
  }
  for (const ok of ['a:foo:bar/baz.example.com', 'mx:%{d}/24', 'exists:%{ir}.%{l1r+-}._spf.%{d}', 'ip6:::1.1.1.1/0', 'ip6:Cafe:Babe:8000::/33', 'a//0', 'default=-', 'moo.cow-x=%{l1r-}', 'include:example.com.', '?ptr:example.com']) {
    assert.equal(parseTerm(ok).error, undefined, ok);
  }
  const bad = parseTerm('exists:%{i}.%{z}.example.com', 7);
  assert.equal(bad.errorAt, 7 + 'exists:%{i}.'.length);
});

const v4: MacroValues = {
  s: 'strong-bad@email.example.com', l: 'strong-bad', o: 'email.example.com', d: 'email.example.com', i: '192.0.2.3', h: 'mx.example.org',
  v: 'in-addr', c: '192.0.2.3', r: 'receiver.example.net', t: '1700000000', p: async () => 'mx.example.org',
};

test('macro expansion: the examples of RFC 7208 §7.4', async () => {
  const examples: Array<[string, string]> = [
    ['%{s}', 'strong-bad@email.example.com'], ['%{o}', 'email.example.com'], ['%{d}', 'email.example.com'],
    ['%{d4}', 'email.example.com'], ['%{d3}', 'email.example.com'], ['%{d2}', 'example.com'], ['%{d1}', 'com'],
    ['%{dr}', 'com.example.email'], ['%{d2r}', 'example.email'], ['%{l}', 'strong-bad'], ['%{l-}', 'strong.bad'],
    ['%{lr}', 'strong-bad'], ['%{lr-}', 'bad.strong'], ['%{l1r-}', 'strong'],
    ['%{ir}.%{v}._spf.%{d2}', '3.2.0.192.in-addr._spf.example.com'],
    ['%{lr-}.lp._spf.%{d2}', 'bad.strong.lp._spf.example.com'],
    ['%{lr-}.lp.%{ir}.%{v}._spf.%{d2}', 'bad.strong.lp.3.2.0.192.in-addr._spf.example.com'],
    ['%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}', '3.2.0.192.in-addr.strong.lp._spf.example.com'],
    ['%{d2}.trusted-domains.example.net', 'example.com.trusted-domains.example.net'],
    ['%{p2}.trusted-domains.example.net.', 'example.org.trusted-domains.example.net'],
  ];
  for (const [macro, want] of examples) assert.equal(await expandMacros(macro, v4), want, macro);
  const v6: MacroValues = { ...v4, i: '2.0.0.1.0.D.B.8.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.C.B.0.1', v: 'ip6' };
  // RFC 7208 writes the nibbles in lower case; the suites (and pyspf) upper case: DNS does not care
  assert.equal((await expandMacros('%{ir}.%{v}._spf.%{d2}', v6)).toLowerCase(), '1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com');
});

test('macro expansion: escapes, URL encoding, exp-only letters, long names', async () => {
  assert.equal(await expandMacros('%%%_%-', v4, true), '% %20');
  assert.equal(await expandMacros('http://%{d}/why?s=%{S}&i=%{I}', v4, true), 'http://email.example.com/why?s=strong-bad%40email.example.com&i=192.0.2.3');
  assert.equal(await expandMacros('%{c} %{r} %{t}', v4, true), '192.0.2.3 receiver.example.net 1700000000');
  await assert.rejects(() => expandMacros('%{c}.example.com', v4), /only in explanation/);
  const long = await expandMacros(`${'a'.repeat(60)}.${'b'.repeat(60)}.${'c'.repeat(60)}.${'d'.repeat(60)}.%{d}`, v4);
  assert.ok(long.length <= 253);
  assert.ok(long.endsWith('.email.example.com'));
  assert.equal(macroSyntaxError('%{l1r+-=}'), undefined);
  assert.match(domainSpecError('%{d}.123')?.message ?? '', /fully qualified/);
  assert.equal(domainSpecError('%{d}'), undefined);
});
