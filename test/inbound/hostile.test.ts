// Hostile and broken clients over raw sockets: thousands of commands pipelined in one write, NUL
// bytes in DATA, and what a plaintext EHLO advertises.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startRelay, type TestRelay } from './setup.ts';
import { RawClient } from './raw-client.ts';

const RELAY_LISTED = 'access:\n  relay:\n    mode: only\n    list: [127.0.0.1]\n';

async function withRelay(yaml: string, fn: (r: TestRelay) => Promise<void>): Promise<void> {
  const r = await startRelay(yaml);
  try {
    await fn(r);
  } finally {
    await r.close();
  }
}

/**
 * Sends `bytes` in one write after the banner and collects every reply (the last line of each) until
 * the server closes the connection. Bounded: the socket is destroyed after `ms`.
 */
async function converse(port: number, bytes: string | Buffer, ms = 60_000): Promise<string[]> {
  const socket = net.connect(port, '127.0.0.1');
  let text = '';
  let greeted = false;
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  socket.on('error', () => {});
  socket.on('data', (d: Buffer) => {
    text += d.toString('latin1');
    if (!greeted && text.includes('\r\n')) {
      greeted = true;
      socket.write(bytes);
    }
  });
  const timer = setTimeout(() => socket.destroy(), ms);
  await closed;
  clearTimeout(timer);
  return text.split('\r\n').filter((l) => l && l[3] !== '-');
}

test('10,000 commands pipelined in one write are all answered, in order, and the session goes on', async () => {
  await withRelay(RELAY_LISTED, async (r) => {
    const rounds = 1750; // 4 commands each (+1 over-long line every 50th): with the 3,000 above, over 10,000
    // 3,000 commands answered synchronously in a row (overflowed the call stack at about 2,000)
    let input = `EHLO client.test\r\n${'NOOP\r\nRSET\r\n'.repeat(1500)}`;
    const expected = ['220', '250', ...Array<string>(3000).fill('250')];
    for (let i = 0; i < rounds; i++) {
      // 250, 503 (nested MAIL), 500 (over-long, every 50th round: the slow path of the parser), 250 (RSET)
      input += `MAIL FROM:<a${i}@example.org>\r\nMAIL FROM:<b@example.org>\r\n`;
      expected.push('250', '503');
      if (i % 50 === 0) {
        input += `NOOP ${'x'.repeat(3000)}\r\n`;
        expected.push('500');
      }
      input += 'RSET\r\nNOOP\r\n';
      expected.push('250', '250');
    }
    input += 'MAIL FROM:<last@example.org>\r\nRCPT TO:<someone@example.com>\r\nDATA\r\nSubject: after the burst\r\n\r\nhello\r\n.\r\nQUIT\r\n';
    expected.push('250', '250', '354', '250', '221');
    const replies = await converse(r.port, input);
    assert.ok(!replies.some((l) => l.startsWith('421')), replies.find((l) => l.startsWith('421')));
    assert.deepEqual(replies.map((l) => l.slice(0, 3)), expected);
    assert.equal(r.queue.messages.length, 1);
    assert.equal(r.queue.messages[0].envelope.mailFrom, 'last@example.org');
  });
});

test('2,000 whole transactions pipelined in one write: every message queued, in order', async () => {
  await withRelay(RELAY_LISTED, async (r) => {
    let input = 'EHLO client.test\r\n';
    for (let i = 0; i < 2000; i++) input += `MAIL FROM:<s${i}@example.org>\r\nRCPT TO:<someone@example.com>\r\nDATA\r\nSubject: ${i}\r\n\r\nbody ${i}\r\n.\r\n`;
    const replies = await converse(r.port, `${input}QUIT\r\n`);
    assert.equal(replies.filter((l) => l.startsWith('250 2.0.0 Ok: queued')).length, 2000, replies.filter((l) => !/^(2|3)/.test(l)).slice(0, 3).join(' | '));
    assert.deepEqual(r.queue.messages.map((m) => m.envelope.mailFrom), Array.from({ length: 2000 }, (_, i) => `s${i}@example.org`));
  });
});

async function sendWithNul(r: TestRelay): Promise<{ code: number; text: string }> {
  const c = await RawClient.connect(r.port);
  await c.reply();
  await c.cmd('EHLO client.test');
  await c.cmd('MAIL FROM:<a@example.org>');
  await c.cmd('RCPT TO:<b@example.com>');
  assert.equal((await c.cmd('DATA')).code, 354);
  c.write(Buffer.from('Subject: nul\r\n\r\nbefore\0after\r\n\0\r\n.\r\n', 'latin1'));
  const reply = await c.reply();
  // The session goes on either way.
  assert.equal((await c.cmd('NOOP')).code, 250);
  c.close();
  return reply;
}

test('a NUL byte in DATA is refused with 554 5.6.0 by default; the message is never queued', async () => {
  await withRelay(RELAY_LISTED, async (r) => {
    const reply = await sendWithNul(r);
    assert.equal(reply.code, 554);
    assert.match(reply.text, /^5\.6\.0 Message contains NUL characters/);
    assert.equal(r.queue.messages.length, 0);
  });
});

test('limits.nulBytes: strip removes NUL bytes and keeps the rest of the message', async () => {
  await withRelay(`${RELAY_LISTED}limits:\n  nulBytes: strip\n`, async (r) => {
    const reply = await sendWithNul(r);
    assert.equal(reply.code, 250, reply.text);
    const content = r.queue.messages[0].content;
    assert.equal(content.indexOf(0), -1);
    assert.match(content.toString('latin1'), /\r\n\r\nbeforeafter\r\n\r\n$/);
  });
});

test('a plaintext EHLO advertises AUTH only where it can be used: after STARTTLS, or when plaintext AUTH is allowed', async () => {
  const auth = 'auth:\n  enabled: true\n';
  await withRelay(auth, async (r) => {
    const c = await RawClient.connect(r.port);
    await c.reply();
    const plain = await c.cmd('EHLO client.test');
    assert.match(plain.text, /STARTTLS/);
    assert.doesNotMatch(plain.text, /AUTH/, 'AUTH before STARTTLS would only be answered 538');
    assert.equal((await c.cmd('AUTH PLAIN AGZvbwBiYXI=')).code, 538);
    assert.equal((await c.cmd('STARTTLS')).code, 220);
    await c.upgrade();
    const secure = await c.cmd('EHLO client.test');
    assert.match(secure.text, /AUTH PLAIN LOGIN/);
    c.close();
  });
  await withRelay(`${auth}  allowInsecure: true\n`, async (r) => {
    const c = await RawClient.connect(r.port);
    await c.reply();
    assert.match((await c.cmd('EHLO client.test')).text, /AUTH PLAIN LOGIN/);
    c.close();
  });
});
