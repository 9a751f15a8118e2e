/**
 * sendRaw must put the same envelope and the same bytes on the wire as nodemailer's sendMail({ raw })
 * did: checked against a real smtp-server on loopback, both ways, for messages that lack a final
 * line end, start lines with dots, carry a Unicode domain, a duplicate recipient and a SIZE.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import nodemailer from 'nodemailer';
import { sendRaw } from '../../src/transports/raw-send.ts';

interface Seen { from: string; size: unknown; to: string[]; data: Buffer }

async function startServer(): Promise<{ port: number; seen: Seen[]; close: () => Promise<void> }> {
  const seen: Seen[] = [];
  let current: Partial<Seen> = {};
  const server = new SMTPServer({
    logger: false, authOptional: true, disabledCommands: ['STARTTLS'], closeTimeout: 200, size: 10_000_000,
    onMailFrom(address, _s, cb) { current = { from: address.address, size: (address.args as Record<string, unknown>)?.SIZE, to: [] }; cb(); },
    onRcptTo(address, _s, cb) { current.to!.push(address.address); cb(); },
    onData(stream, _s, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => { seen.push({ ...(current as Seen), data: Buffer.concat(chunks) }); cb(); });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.server.address() as AddressInfo).port, seen, close: () => new Promise((r) => server.close(() => r())) };
}

const cases: Array<{ name: string; envelope: { from: string; to: string[]; size?: number }; body: string }> = [
  { name: 'no final line end', envelope: { from: 'printer@example.com', to: ['a@example.org'], size: 30 }, body: 'Subject: x\r\n\r\nno newline at end' },
  { name: 'dot lines', envelope: { from: 'printer@example.com', to: ['a@example.org', 'b@example.org'] }, body: 'Subject: x\r\n\r\n.\r\n..two\r\n.end\r\n' },
  { name: 'unicode domain, duplicate recipient', envelope: { from: 'scan@jõgeva.ee', to: ['a@xn--jgeva-dua.ee', 'a@xn--jgeva-dua.ee', 'b@jõgeva.ee'], size: 20 }, body: 'Subject: x\r\n\r\nhi\r\n' },
  { name: 'empty message', envelope: { from: '', to: ['a@example.org'] }, body: '' },
];

test('sendRaw puts the same envelope and bytes on the wire as sendMail({ raw })', { timeout: 30_000 }, async (t) => {
  const server = await startServer();
  t.after(() => server.close());
  for (const pool of [true, false]) {
    const transporter = nodemailer.createTransport({ host: '127.0.0.1', port: server.port, ignoreTLS: true, ...(pool ? { pool: true, maxConnections: 1 } : {}) } as Parameters<typeof nodemailer.createTransport>[0]);
    t.after(() => transporter.close());
    for (const c of cases) {
      server.seen.length = 0;
      const viaMailer = await transporter.sendMail({ envelope: c.envelope as { from: string; to: string[] }, raw: Readable.from([Buffer.from(c.body)], { objectMode: false }) });
      const viaRaw = await sendRaw(transporter, c.envelope, Readable.from([Buffer.from(c.body)], { objectMode: false }), 'test-id');
      assert.equal(server.seen.length, 2, c.name);
      const [a, b] = server.seen;
      assert.deepEqual({ from: b.from, size: b.size, to: b.to }, { from: a.from, size: a.size, to: a.to }, `${c.name} (pool ${pool}): envelope`);
      assert.equal(b.data.toString('latin1'), a.data.toString('latin1'), `${c.name} (pool ${pool}): bytes`);
      assert.deepEqual(viaRaw.accepted, viaMailer.accepted, `${c.name}: accepted`);
      assert.equal(viaRaw.response, viaMailer.response, `${c.name}: response`);
    }
  }
});

test('sendRaw reports a refused recipient like sendMail', { timeout: 30_000 }, async (t) => {
  const server = new SMTPServer({
    logger: false, authOptional: true, disabledCommands: ['STARTTLS'], closeTimeout: 200,
    onRcptTo(address, _s, cb) { cb(address.address.startsWith('bad') ? Object.assign(new Error('5.1.1 no such user'), { responseCode: 550 }) : undefined); },
    onData(stream, _s, cb) { stream.resume(); stream.on('end', () => cb()); },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  const transporter = nodemailer.createTransport({ host: '127.0.0.1', port: (server.server.address() as AddressInfo).port, ignoreTLS: true, pool: true } as Parameters<typeof nodemailer.createTransport>[0]);
  t.after(() => transporter.close());
  const info = await sendRaw(transporter, { from: 'p@example.com', to: ['ok@example.org', 'bad@example.org'] }, Readable.from([Buffer.from('Subject: x\r\n\r\nhi\r\n')], { objectMode: false }), 'id');
  assert.deepEqual(info.accepted, ['ok@example.org']);
  assert.deepEqual(info.rejected, ['bad@example.org']);
  await assert.rejects(sendRaw(transporter, { from: 'p@example.com', to: ['bad@example.org'] }, Readable.from([Buffer.from('x\r\n')], { objectMode: false }), 'id'), (e: Error & { code?: string }) => e.code === 'EENVELOPE');
});
