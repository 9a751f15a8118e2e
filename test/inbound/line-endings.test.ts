import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LineEndingFixer } from '../../src/inbound/line-endings.ts';

async function run(mode: 'normalize' | 'reject', chunks: string[]): Promise<{ out: string; bare: number }> {
  const fixer = new LineEndingFixer(mode);
  const parts: Buffer[] = [];
  fixer.on('data', (c: Buffer) => parts.push(c));
  const ended = new Promise((r) => fixer.on('end', r));
  for (const c of chunks) fixer.write(Buffer.from(c, 'latin1'));
  fixer.end();
  await ended;
  return { out: Buffer.concat(parts).toString('latin1'), bare: fixer.bareFound };
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
