/**
 * The outbound line normalizer (indexOf jumps, chunks passed on uncopied when nothing changes)
 * against a byte-by-byte reference of the same rules: bare CR / bare LF → CRLF, lines folded with
 * CRLF SP past the limit. Random inputs, random chunk splits, small limits so folding happens often.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLineNormalizer } from '../../src/transports/line-normalizer.ts';

/** The rules one byte at a time: obviously right, too slow for the relay. */
function reference(input: Buffer, limit: number): Buffer {
  const out: number[] = [];
  let lineLength = 0;
  for (let i = 0; i < input.length; i++) {
    const b = input[i];
    if (b === 13) {
      out.push(13, 10);
      lineLength = 0;
      if (input[i + 1] === 10) i++;
    } else if (b === 10) {
      out.push(13, 10);
      lineLength = 0;
    } else {
      if (lineLength >= limit) {
        out.push(13, 10, 32);
        lineLength = 1;
      }
      out.push(b);
      lineLength++;
    }
  }
  return Buffer.from(out);
}

async function normalize(chunks: Buffer[], limit: number): Promise<Buffer> {
  const t = createLineNormalizer(limit);
  const out: Buffer[] = [];
  t.on('data', (d: Buffer) => out.push(Buffer.from(d)));
  const ended = new Promise((resolve) => t.on('end', resolve));
  for (const c of chunks) t.write(c);
  t.end();
  await ended;
  return Buffer.concat(out);
}

test('same output as the byte-by-byte rules on random input split at random', async () => {
  let seed = 20261125;
  const rnd = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const alphabet = [13, 10, 65, 66, 46, 32];
  for (let round = 0; round < 1500; round++) {
    const input = Buffer.alloc(rnd(2500));
    const dense = rnd(2) === 0;
    for (let k = 0; k < input.length; k++) input[k] = dense ? alphabet[rnd(6)] : rnd(12) === 0 ? alphabet[rnd(2)] : 65 + rnd(3);
    const limit = 1 + rnd(60);
    const chunks: Buffer[] = [];
    for (let p = 0; p < input.length;) {
      const n = 1 + rnd(300);
      chunks.push(input.subarray(p, p + n));
      p += n;
    }
    assert.deepEqual(await normalize(chunks, limit), reference(input, limit), `round ${round}, limit ${limit}`);
  }
});

test('a clean chunk is passed on as it is, and a 998-octet line is not folded', async () => {
  const line = `${'x'.repeat(998)}\r\n`;
  const clean = Buffer.from(line.repeat(20));
  const t = createLineNormalizer();
  const seen: Buffer[] = [];
  t.on('data', (d: Buffer) => seen.push(d));
  t.end(clean);
  await new Promise((resolve) => t.on('end', resolve));
  assert.equal(seen.length, 1);
  assert.equal(seen[0].buffer, clean.buffer, 'no copy');
  assert.deepEqual(await normalize([Buffer.from(`${'y'.repeat(999)}\r\n`)], 998), Buffer.from(`${'y'.repeat(998)}\r\n y\r\n`));
});
