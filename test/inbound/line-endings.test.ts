import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LineEndingFixer, wireSafeBlock } from '../../src/inbound/line-endings.ts';
import { prng } from '../helpers/prng.ts';

async function run(mode: 'normalize' | 'reject', chunks: string[]): Promise<{ out: string; bare: number; longest: number }> {
  const fixer = new LineEndingFixer(mode);
  const parts: Buffer[] = [];
  fixer.on('data', (c: Buffer) => parts.push(c));
  const ended = new Promise((r) => fixer.on('end', r));
  for (const c of chunks) fixer.write(Buffer.from(c, 'latin1'));
  fixer.end();
  await ended;
  return { out: Buffer.concat(parts).toString('latin1'), bare: fixer.bareFound, longest: fixer.longestLine };
}

/** Every way of cutting the input in two must give the same result. */
async function allSplits(mode: 'normalize' | 'reject', input: string): Promise<Set<string>> {
  const results = new Set<string>();
  for (let i = 0; i <= input.length; i++) {
    const r = await run(mode, [input.slice(0, i), input.slice(i)]);
    results.add(`${JSON.stringify(r.out)}#${r.bare}`);
  }
  return results;
}

test('normalize turns bare LF and bare CR into CRLF and leaves CRLF alone', async () => {
  const r = await run('normalize', ['a\nb\rc\r\nd\n\re\r']);
  assert.equal(r.out, 'a\r\nb\r\nc\r\nd\r\n\r\ne\r\n');
  assert.equal(r.bare, 5);
});

test('the result does not depend on where chunks are split (CR at a chunk end)', async () => {
  for (const input of ['x\r\ny', 'x\ry', 'x\ny', 'a\r\r\nb', 'a\n.\r\nMAIL', '\r\n.\r\r\n', 'end\r']) {
    const splits = await allSplits('normalize', input);
    assert.equal(splits.size, 1, `different results for ${JSON.stringify(input)}: ${[...splits].join(' | ')}`);
  }
});

test('reject mode passes bytes unchanged and counts bare line ends', async () => {
  const clean = await run('reject', ['one\r\ntwo\r', '\nthree\r\n']);
  assert.equal(clean.bare, 0);
  assert.equal(clean.out, 'one\r\ntwo\r\nthree\r\n');
  const dirty = await run('reject', ['one\ntwo\r', 'x']);
  assert.equal(dirty.out, 'one\ntwo\rx');
  assert.equal(dirty.bare, 2);
});

test('random inputs and random chunking agree with the one-regex reference', async () => {
  let seed = 42;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  for (let round = 0; round < 300; round++) {
    const input = Array.from({ length: rand(40) }, () => 'a\r\n.'[rand(4)]).join('');
    const cuts = [rand(input.length + 1), rand(input.length + 1)].sort((x, y) => x - y);
    const chunks = [input.slice(0, cuts[0]), input.slice(cuts[0], cuts[1]), input.slice(cuts[1])].filter(Boolean);
    const expected = input.replace(/\r\n|\r|\n/g, '\r\n');
    const expectedBare = (input.match(/\r\n|\r|\n/g) ?? []).filter((m) => m !== '\r\n').length;
    const r = await run('normalize', chunks);
    assert.equal(r.out, expected, JSON.stringify(chunks));
    assert.equal(r.bare, expectedBare, JSON.stringify(chunks));
    const rej = await run('reject', chunks);
    assert.equal(rej.out, input);
    assert.equal(rej.bare, expectedBare);
  }
});

test('longestLine: the longest line of what leaves the fixer, wherever the chunks are cut', async () => {
  const next = prng(99);
  const rand = (n: number) => Math.floor(next() * n);
  for (let round = 0; round < 500; round++) {
    const pieces = ['a', 'bb', 'x'.repeat(rand(30)), '\r\n', '\r', '\n', '.'];
    const input = Array.from({ length: rand(30) }, () => pieces[rand(pieces.length)]).join('');
    const cuts = [rand(input.length + 1), rand(input.length + 1)].sort((x, y) => x - y);
    const chunks = [input.slice(0, cuts[0]), input.slice(cuts[0], cuts[1]), input.slice(cuts[1])].filter(Boolean);
    const r = await run('normalize', chunks);
    const expected = Math.max(0, ...r.out.split('\r\n').map((l) => l.length));
    assert.equal(r.longest, expected, JSON.stringify(chunks));
  }
});

test('wireSafeBlock: CRLF only and no line over 998 octets', () => {
  assert.equal(wireSafeBlock(Buffer.from('Received: from a\r\n\tby b\r\n')), true);
  assert.equal(wireSafeBlock(Buffer.from(`X: ${'y'.repeat(995)}\r\n`)), true, '998 octets is allowed');
  assert.equal(wireSafeBlock(Buffer.from(`X: ${'y'.repeat(996)}\r\n`)), false, '999 octets is not');
  assert.equal(wireSafeBlock(Buffer.from('A: b\nC: d\r\n')), false, 'bare LF');
  assert.equal(wireSafeBlock(Buffer.from('A: b\rC: d\r\n')), false, 'bare CR');
  assert.equal(wireSafeBlock(Buffer.from('\nA: b\r\n')), false, 'bare LF first');
});
