import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeWords } from 'postal-mime';
import { repairHeaderBlock } from '../../src/core/header-repair.ts';

const opts = { hostname: 'relay.test', now: new Date('2026-12-07T10:00:00Z'), unique: 'abc123' };
const repair = (head: string | Buffer, extra: { smtputf8?: boolean } = {}) =>
  repairHeaderBlock(Buffer.isBuffer(head) ? head : Buffer.from(head, 'latin1'), { ...opts, ...extra });

const COMPLETE = 'From: Scanner <scan@example.org>\r\nTo: a@example.org\r\nSubject: Scan\r\nDate: Mon, 07 Dec 2026 09:00:00 +0000\r\nMessage-ID: <1@x>\r\n\r\n';

test('a complete header block comes back untouched, as the same Buffer', () => {
  const block = Buffer.from(COMPLETE);
  const r = repairHeaderBlock(block, opts);
  assert.equal(r.block, block);
  assert.deepEqual(r.repairs, []);
});

test('missing Date and Message-ID are added at the end of the block, each named', () => {
  const r = repair('From: scan@example.org\r\nTo: a@example.org\r\nSubject: x\r\n\r\n');
  assert.equal(r.block.toString(), 'From: scan@example.org\r\nTo: a@example.org\r\nSubject: x\r\nDate: Mon, 07 Dec 2026 10:00:00 +0000\r\nMessage-ID: <mxd3n0g0.abc123@relay.test>\r\n\r\n');
  assert.deepEqual(r.repairs, ['added Date: (the client sent none)', 'added Message-ID: (the client sent none)']);
  // only the missing one
  const onlyId = repair('Date: Mon, 07 Dec 2026 09:00:00 +0000\r\nSubject: x\r\n\r\n');
  assert.deepEqual(onlyId.repairs, ['added Message-ID: (the client sent none)']);
});

test('Bcc (folded too) is removed; every other header byte stays', () => {
  const r = repair(`X-Odd:  keep   spacing\r\nBcc: hidden@example.org,\r\n  other@example.org\r\n${COMPLETE.slice(0, -2)}\r\n`);
  assert.equal(r.block.toString(), `X-Odd:  keep   spacing\r\n${COMPLETE}`);
  assert.deepEqual(r.repairs, ['removed the Bcc: header (its recipients stay in the envelope)']);
});

test('a From display name with an unquoted @ is quoted so Exchange reads the address; good ones stay', () => {
  const head = (from: string) => COMPLETE.replace('From: Scanner <scan@example.org>', `From: ${from}`);
  const r = repair(head('printer@example.org <printer@example.org>'));
  assert.match(r.block.toString(), /^From: "printer@example\.org" <printer@example\.org>\r\n/);
  assert.match(r.repairs[0], /quoted the From display name "printer@example.org" \(unquoted "@"/);
  const comma = repair(head('Copier, 2nd floor <copier@example.org>'));
  assert.match(comma.block.toString(), /^From: "Copier, 2nd floor" <copier@example\.org>\r\n/);
  for (const fine of ['"printer@example.org" <printer@example.org>', 'printer@example.org', 'Scanner 2.floor <s@example.org>', '=?UTF-8?B?U2NhbiDDqXTDqQ==?= <s@example.org>', 'a@example.org, b@example.org']) {
    const ok = repair(head(fine));
    assert.deepEqual(ok.repairs, [], fine);
  }
});

test('raw 8-bit Subject and From name are encoded (RFC 2047), UTF-8 or windows-1252; left alone under SMTPUTF8', () => {
  const utf8 = Buffer.concat([Buffer.from('From: Büro Drucker <buero@example.org>\r\nSubject: Scan vom Büro – Größe A4\r\n', 'utf8'), Buffer.from(COMPLETE.split('\r\n').slice(2).join('\r\n'))]);
  const r = repair(utf8);
  const text = r.block.toString('latin1');
  assert.doesNotMatch(text, /[\x80-\xff]/);
  const subject = /Subject: (.*(\r\n .*)*)\r\n/.exec(text)![1];
  assert.equal(decodeWords(subject.replace(/\r\n /g, ' ')), 'Scan vom Büro – Größe A4');
  assert.match(text, /^From: =\?UTF-8\?B\?[^?]+\?= <buero@example\.org>\r\n/);
  assert.deepEqual(r.repairs, ['encoded the raw 8-bit From display name (RFC 2047)', 'encoded the raw 8-bit Subject (RFC 2047)']);
  const latin1 = repair(Buffer.concat([Buffer.from('Subject: Scan '), Buffer.from([0xe9, 0x74, 0xe9]), Buffer.from(`\r\n${COMPLETE.split('\r\n').slice(0, 1).join('')}\r\nDate: x\r\nMessage-ID: <1@x>\r\n\r\n`)]));
  assert.match(latin1.block.toString(), /Subject: =\?windows-1252\?B\?U2NhbiDpdOk=\?=/);
  assert.deepEqual(repair(utf8, { smtputf8: true }).repairs, []);
});

test('a long UTF-8 subject becomes several encoded words of at most 75 characters, split between characters', () => {
  const long = 'Überweisungsbestätigung für Rechnung Nr. 2026-0042 – Größe A4 – ÄÖÜäöüß '.repeat(3).trim();
  const r = repair(Buffer.concat([Buffer.from(`Subject: ${long}\r\n`, 'utf8'), Buffer.from('Date: x\r\nMessage-ID: <1@x>\r\n\r\n')]));
  const subject = /Subject: (.*(\r\n .*)*)\r\n/.exec(r.block.toString('latin1'))![1];
  const words = subject.split('\r\n ');
  assert.ok(words.length > 2);
  for (const w of words) {
    assert.ok(w.length <= 75, w);
    assert.doesNotThrow(() => new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(w.split('?')[3], 'base64')), 'each word is whole characters');
  }
  assert.equal(decodeWords(words.join(' ')), long);
});

test('a header block with bare LF keeps its line ends', () => {
  const r = repair('Subject: x\nFrom: a@example.org\n\n');
  assert.equal(r.block.toString(), `Subject: x\nFrom: a@example.org\nDate: Mon, 07 Dec 2026 10:00:00 +0000\nMessage-ID: <mxd3n0g0.abc123@relay.test>\n\n`);
});

test('a DKIM-signed message keeps its signed From and Subject; only a missing field is added', () => {
  const signed = Buffer.concat([Buffer.from('DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=s; h=from:subject; bh=x; b=y\r\nFrom: printer@example.org <printer@example.org>\r\nSubject: Büro\r\nDate: Mon, 07 Dec 2026 09:00:00 +0000\r\n\r\n', 'utf8')]);
  const r = repairHeaderBlock(signed, opts);
  assert.deepEqual(r.repairs, ['added Message-ID: (the client sent none)']);
  assert.equal(r.block.subarray(0, signed.length - 2).toString('latin1'), signed.subarray(0, signed.length - 2).toString('latin1'));
});
