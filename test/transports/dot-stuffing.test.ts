/**
 * The fast DataStream body against nodemailer's own, on random input cut at random: same bytes
 * out, same counters, same carried last byte. And once installed, a real SMTP delivery through
 * nodemailer to a loopback server still dot-stuffs (the server sees the message unchanged).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SMTPServer } from 'smtp-server';
import nodemailer from 'nodemailer';
import { fastTransform, installFastDotStuffing, markWireSafe, originalTransform, runBody } from '../../src/transports/dot-stuffing.ts';
import { prng } from '../helpers/prng.ts';

test('installs: it agrees with nodemailer on the self-check', () => {
  assert.equal(installFastDotStuffing(), true);
  assert.equal(typeof originalTransform, 'function');
});

test('same output, counters and state as nodemailer on random input split at random', () => {
  installFastDotStuffing();
  let seed = 7;
  const rnd = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const alphabet = [0x0d, 0x0a, 0x2e, 0x41, 0x20];
  for (let round = 0; round < 2000; round++) {
    const input = Buffer.alloc(1 + rnd(1500));
    const dense = rnd(2) === 0;
    for (let k = 0; k < input.length; k++) input[k] = dense ? alphabet[rnd(5)] : rnd(15) === 0 ? alphabet[rnd(3)] : 0x61 + rnd(3);
    const chunks: Buffer[] = [];
    for (let p = 0; p < input.length;) {
      const n = 1 + rnd(200);
      chunks.push(input.subarray(p, p + n));
      p += n;
    }
    const a = runBody(originalTransform!, chunks);
    const b = runBody(fastTransform, chunks);
    assert.deepEqual(b, a, `round ${round}`);
  }
});

test('a whole message of CRLF lines marked wire-safe: the one-search path gives nodemailer\'s bytes and counters', () => {
  installFastDotStuffing();
  const next = prng(11);
  const rnd = (n: number): number => Math.floor(next() * n);
  let inserted = 0;
  for (let round = 0; round < 2000; round++) {
    const lines = Array.from({ length: 1 + rnd(40) }, () => ['', '.', '..', '.x', 'a.b', 'text', `.${'y'.repeat(rnd(80))}`][rnd(7)]);
    const input = Buffer.from(lines.map((l) => `${l}\r\n`).join(''));
    const a = runBody(originalTransform!, [input]);
    const b = runBody(fastTransform, [markWireSafe(Buffer.from(input))]);
    assert.deepEqual(b, a, `round ${round}: ${JSON.stringify(input.toString())}`);
    if (a.outBytes > a.inBytes) inserted++;
  }
  assert.ok(inserted > 1000, `dots were inserted in ${inserted} rounds`);
});

test('a delivery through nodemailer still dot-stuffs: the server gets the lines starting with a dot intact', async () => {
  installFastDotStuffing();
  let received = '';
  const server = new SMTPServer({
    authOptional: true, disabledCommands: ['STARTTLS'], logger: false,
    onData(stream, _session, done) {
      const parts: Buffer[] = [];
      stream.on('data', (c: Buffer) => parts.push(c));
      stream.on('end', () => { received = Buffer.concat(parts).toString(); done(); });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.server.address() as { port: number }).port;
  try {
    const transporter = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true });
    const body = `Subject: dots\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nend ${'x'.repeat(70_000)}\r\n`;
    await transporter.sendMail({ envelope: { from: 'a@example.org', to: ['b@example.org'] }, raw: body });
    transporter.close();
    assert.equal(received, body);
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});
