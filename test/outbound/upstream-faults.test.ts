// Upstream faults not covered elsewhere, each against a scripted raw-socket upstream on loopback,
// with the message's final state in the spool asserted. Covered elsewhere: connection refused
// (transports/smtp.test.ts, e2e/relay.test.ts), the connection dropped after the final dot
// (manager.test.ts, smtp.test.ts), 4xx for some recipients and 2xx for others (manager.test.ts,
// smtp.test.ts, e2e/relay.test.ts), a certificate that does not verify (smtp.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { harness } from './harness.ts';

const T = { timeout: 60_000 };

interface Script {
  /** Called with each complete command line; returns the reply to send (or nothing). */
  onLine(line: string, socket: net.Socket): string | undefined;
  /** Called with DATA content bytes while in DATA. */
  onData?(chunk: Buffer, socket: net.Socket): void;
}

/** A raw upstream: greets, then follows the script; DATA content goes to onData until "." (if ever). */
async function scripted(make: () => Script): Promise<{ port: number; sessions: number; dataBytes: number; close(): Promise<void> }> {
  const state = { sessions: 0, dataBytes: 0 };
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    state.sessions++;
    const script = make();
    let buffer = Buffer.alloc(0);
    let inData = false;
    socket.write('220 upstream.test ESMTP scripted\r\n');
    socket.on('data', (d: Buffer) => {
      if (inData) {
        state.dataBytes += d.length;
        script.onData?.(d, socket);
        if (d.subarray(-5).toString('latin1') === '\r\n.\r\n') {
          inData = false;
          const reply = script.onLine('.', socket);
          if (reply) socket.write(reply);
        }
        return;
      }
      buffer = Buffer.concat([buffer, d]);
      for (let nl = buffer.indexOf('\r\n'); nl >= 0 && !inData; nl = buffer.indexOf('\r\n')) {
        const line = buffer.subarray(0, nl).toString('latin1');
        buffer = buffer.subarray(nl + 2);
        const reply = script.onLine(line, socket);
        if (reply) socket.write(reply);
        if (/^DATA$/i.test(line) && reply?.startsWith('354')) inData = true;
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    get sessions() { return state.sessions; },
    get dataBytes() { return state.dataBytes; },
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}

/** The usual dialogue; `override` answers first where it returns something. */
function dialogue(override: (line: string, socket: net.Socket) => string | undefined = () => undefined, ehlo = ['PIPELINING']): () => Script {
  return () => ({
    onLine(line, socket) {
      const o = override(line, socket);
      if (o !== undefined) return o;
      const verb = line.slice(0, 4).toUpperCase();
      if (verb === 'EHLO') return `250-upstream.test\r\n${ehlo.map((e, i) => `250${i === ehlo.length - 1 ? ' ' : '-'}${e}\r\n`).join('')}`;
      if (verb === 'MAIL' || verb === 'RCPT' || verb === 'RSET' || verb === 'NOOP') return '250 2.0.0 ok\r\n';
      if (verb === 'DATA') return '354 go ahead\r\n';
      if (line === '.') return '250 2.0.0 queued\r\n';
      if (verb === 'QUIT') {
        socket.end('221 2.0.0 bye\r\n');
        return undefined;
      }
      return '502 5.5.2 unknown\r\n';
    },
  });
}

async function deferredOnce(up: { port: number }, extraUpstream = '', body?: string) {
  const h = await harness(`upstreams:\n  - { name: main, url: "${extraUpstream || 'smtp'}://127.0.0.1:${up.port}", timeout: 2 }\n`);
  const id = await h.enqueue('printer@contoso.com', ['x@example.org', 'y@example.org'], body);
  await h.manager.runOnce();
  const list = await h.spool.list();
  return { h, id, list };
}

test('TLS handshake failure (STARTTLS answered, then garbage): deferred with the reason, nothing bounced, not a possible duplicate', T, async (t) => {
  const up = await scripted(dialogue((line, socket) => {
    if (line.toUpperCase() === 'STARTTLS') {
      socket.write('220 2.0.0 ready\r\n');
      socket.end('this is not a TLS ServerHello\r\n');
      return '';
    }
    return undefined;
  }, ['PIPELINING', 'STARTTLS']));
  t.after(() => up.close());
  const { h, list } = await deferredOnce(up, 'smtp+starttls');
  t.after(() => h.close());
  assert.equal(list.length, 1);
  assert.equal(list[0].state, 'deferred');
  assert.equal(list[0].record.possibleDuplicate, false);
  assert.deepEqual(list[0].record.recipients.map((r) => r.state), ['pending', 'pending']);
  assert.match(JSON.stringify(list[0].record.recipients[0].lastOutcome), /4\.\d\.\d/);
  assert.deepEqual(await h.badmail(), []);
  assert.equal(up.dataBytes, 0);
});

test('421 in the middle of the session (at RCPT): deferred with the upstream\'s reason, nothing sent, retried later and delivered', T, async (t) => {
  let refuse = true;
  const up = await scripted(dialogue((line, socket) => {
    if (refuse && /^RCPT/i.test(line)) {
      socket.end('421 4.3.2 upstream.test shutting down\r\n');
      return '';
    }
    return undefined;
  }));
  t.after(() => up.close());
  const { h, id, list } = await deferredOnce(up);
  t.after(() => h.close());
  assert.equal(list[0].state, 'deferred');
  assert.equal(list[0].record.possibleDuplicate, false);
  assert.match(JSON.stringify(list[0].record.recipients[0].lastOutcome), /421|4\.3\.2|shutting down/);
  assert.equal(up.dataBytes, 0);
  refuse = false;
  h.clock.advance(16 * 60_000);
  await h.manager.runOnce();
  assert.deepEqual(await h.spool.list(), []);
  assert.ok(h.events.some((ev) => ev.type === 'state' && ev.id === id && ev.state === 'delivered'));
});

test('an upstream that stalls in the middle of DATA (stops reading): deferred after the timeout, nothing bounced, delivered by the retry', T, async (t) => {
  let session = 0;
  const up = await scripted(() => {
    const base = dialogue()();
    // only the first session stalls
    return ++session === 1 ? { onLine: base.onLine, onData: (_chunk, socket) => socket.pause() } : base;
  });
  t.after(() => up.close());
  // Bigger than what the loopback socket buffers hold, so the relay cannot finish writing it.
  const body = `${'x'.repeat(998)}\r\n`.repeat(24_000);
  const { h, id, list } = await deferredOnce(up, '', body);
  t.after(() => h.close());
  assert.ok(up.dataBytes > 0 && up.dataBytes < body.length, `${up.dataBytes} of ${body.length}`);
  assert.equal(list[0].state, 'deferred');
  assert.match(JSON.stringify(list[0].record.recipients[0].lastOutcome), /4\.\d\.\d/);
  // its final dot never left: the upstream cannot have it, so it is no possible duplicate
  assert.equal(list[0].record.possibleDuplicate, false, 'the final dot was never written');
  assert.ok(list[0].record.recipients.every((r) => !r.lastOutcome?.possibleDuplicate));
  assert.deepEqual(await h.badmail(), []);
  h.clock.advance(16 * 60_000);
  await h.manager.runOnce();
  assert.deepEqual(await h.spool.list(), []);
  assert.ok(h.events.some((ev) => ev.type === 'state' && ev.id === id && ev.state === 'delivered'));
});

test('an upstream silent after the final dot: deferred after the timeout and flagged as a possible duplicate', T, async (t) => {
  const up = await scripted(dialogue((line) => (line === '.' ? '' : undefined)));
  t.after(() => up.close());
  const { h, list } = await deferredOnce(up);
  t.after(() => h.close());
  assert.equal(list[0].state, 'deferred');
  assert.equal(list[0].record.possibleDuplicate, true, 'the upstream may have taken it');
  assert.deepEqual(await h.badmail(), []);
});

test('the connection dropped in the middle of DATA (before the final dot): deferred, not a possible duplicate', T, async (t) => {
  const up = await scripted(() => ({ ...dialogue()(), onData: (_chunk, socket) => socket.destroy() }));
  t.after(() => up.close());
  // Bigger than what the loopback socket buffers hold, so the dot is still waiting when the upstream hangs up.
  const body = `${'x'.repeat(998)}\r\n`.repeat(24_000);
  const { h, list } = await deferredOnce(up, '', body);
  t.after(() => h.close());
  assert.ok(up.dataBytes > 0 && up.dataBytes < body.length, `${up.dataBytes} of ${body.length}`);
  assert.equal(list[0].state, 'deferred');
  assert.equal(list[0].record.possibleDuplicate, false, 'the final dot was never written');
  assert.deepEqual(await h.badmail(), []);
});
