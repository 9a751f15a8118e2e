// A bounded fuzzer over the SMTP dialogue, against the real listener on loopback: grammar-based and
// random command sequences, over-long lines, NUL and invalid UTF-8, bare CR/LF, thousands of
// commands pipelined per write, DATA that never ends, STARTTLS followed by a handshake, by garbage
// or by nothing. At least FUZZ_COMMANDS (default 1,000,000) answered commands in all.
// Asserts: the relay never crashes or answers with an internal error, every session ends (the
// listener's open sessions back to 0), and the heap and RSS after GC stay within a bound.
// Reproduce a failure with the seed it prints: FUZZ_SEED=<seed> bash scripts/test.sh test/inbound/fuzz.test.ts
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import v8 from 'node:v8';
import vm from 'node:vm';
import { startRelay, type TestRelay } from './setup.ts';
import { prng } from '../helpers/prng.ts';

const TARGET = Number(process.env.FUZZ_COMMANDS ?? 1_000_000);
const SEED = Number(process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
const PARALLEL = 8;
/** Growth allowed after GC between a warmed-up relay and the end of the run. */
const HEAP_BOUND = 48 * 1024 * 1024;
/** RSS is looser: the client's generated strings live in this process too, and freed pages are not always returned. */
const RSS_BOUND = 256 * 1024 * 1024;
/** No session may outlive this (the relay must end every one: QUIT, FIN, error or limit); generous for a busy machine. */
const SESSION_BOUND_MS = 180_000;

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;


const CHEAP = ['NOOP', 'RSET', 'HELP', 'VRFY postmaster', 'NOOP x', 'RSET'] as const;

class Gen {
  readonly rnd: () => number;
  constructor(rnd: () => number) {
    this.rnd = rnd;
  }
  int(n: number): number { return Math.floor(this.rnd() * n); }
  chance(p: number): boolean { return this.rnd() < p; }
  pick<T>(items: readonly T[]): T { return items[this.int(items.length)]; }
  bytes(n: number): string {
    let s = '';
    for (let i = 0; i < n; i++) s += String.fromCharCode(this.int(256));
    return s;
  }

  address(): string {
    return this.pick([
      () => `user${this.int(1000)}@example.org`,
      () => `someone@example.com`,
      () => `user%evil@[127.0.0.1]`,
      () => `evil!user@example.org`,
      () => `"quoted user"@example.org`,
      () => `@relay:user@evil.example`,
      () => `x@${'a'.repeat(this.int(300))}.example`,
      () => `\u00e9t\u00e9@exemple.fr`,
      () => '',
    ])();
  }

  /** One command line (latin1 string, no line end) from the SMTP grammar, sometimes damaged. */
  command(): string {
    // Half the time a cheap command (so that a million fit in a CI run), otherwise the whole grammar.
    let line = this.chance(0.5) ? this.pick(CHEAP) : this.pick([
      () => `EHLO client${this.int(100)}.test`,
      () => `HELO client.test`,
      () => `EHLO`,
      () => `MAIL FROM:<${this.address()}>${this.pick(['', ' SIZE=1000', ' BODY=8BITMIME', ' SMTPUTF8', ' SIZE=99999999999', ' XYZZY=1', ' RET=FULL', ' SIZE=abc'])}`,
      () => `RCPT TO:<${this.address()}>${this.pick(['', '', ' NOTIFY=NEVER', ' ORCPT=rfc822;x@y'])}`,
      () => 'RSET',
      () => 'NOOP',
      () => `NOOP ${this.bytes(this.int(20))}`,
      () => 'VRFY postmaster',
      () => 'HELP',
      () => `AUTH PLAIN ${Buffer.from(`\0user\0pass${this.int(10)}`).toString('base64')}`,
      () => 'AUTH LOGIN',
      () => 'MAIL FROM:<a@example.org> AUTH=<>',
      () => 'RCPT TO:<postmaster>',
    ])();
    // Commands the relay does not know count towards its limit of 10 per session (then 421): rare,
    // so that a burst mostly runs to its end.
    if (this.chance(0.002)) line = this.pick(['EXPN list', 'BDAT 10 LAST', 'ETRN example.org', 'XCLIENT ADDR=1.2.3.4', 'GET / HTTP/1.1']);
    if (this.chance(0.01)) line = this.mutate(line);
    return line;
  }

  mutate(line: string): string {
    const at = this.int(line.length + 1);
    return this.pick([
      () => line.slice(0, at) + '\0' + line.slice(at),
      () => line.slice(0, at) + '\xff\xfe\xc3\x28' + line.slice(at), // invalid UTF-8
      () => line.slice(0, at) + '\r' + line.slice(at), // bare CR inside a command
      () => line + ' ' + 'A'.repeat(this.chance(0.1) ? 20_000 : 1000 + this.int(3000)), // around or over the command line limit (2,048), sometimes far over
      () => line.toLowerCase(),
      () => `  ${line}  `,
      () => this.bytes(1 + this.int(40)).replace(/[\r\n]/g, ''),
    ])();
  }

  /** A message body for DATA, with the final dot unless `open`. */
  body(open = false): string {
    const lines: string[] = [`Subject: fuzz ${this.int(1e6)}`, ''];
    const n = this.int(12);
    for (let i = 0; i < n; i++) {
      lines.push(this.pick([
        () => 'plain text line',
        () => 'plain text line',
        () => 'plain text line',
        () => '.leading dot',
        () => '..two dots',
        () => `nul\0inside`,
        () => `bare\nlf and bare\rcr`,
        () => '\xff\xfe not UTF-8',
        () => 'x'.repeat(this.chance(0.05) ? 5000 : this.int(100)),
        () => this.bytes(this.int(60)).replace(/\r\n\.\r\n/g, ''),
      ])());
    }
    if (this.chance(0.01)) lines.push('y'.repeat(70_000)); // over limits.maxMessageSize below
    return lines.join('\r\n') + (open ? '\r\n' : '\r\n.\r\n');
  }

  /** A transaction the relay should accept (or refuse for its content). */
  transaction(): string {
    const rcpts = 1 + (this.chance(0.02) ? 120 : this.int(3));
    // Starts clean, so that DATA is accepted and the content is not read as commands.
    let s = `RSET\r\nMAIL FROM:<sender${this.int(100)}@example.org>\r\n`;
    for (let i = 0; i < rcpts; i++) s += `RCPT TO:<someone${i}@example.com>\r\n`;
    return `${s}DATA\r\n${this.body()}`;
  }
}

interface Outcome {
  replies: number;
  bad: string[];
  /** The client gave up waiting (SESSION_BOUND_MS): the relay never ended the session. */
  timedOut: boolean;
  ms: number;
  kind: string;
}

/** Counts reply lines (not continuation lines) and keeps any that show an internal failure. */
class ReplyCounter {
  replies = 0;
  bad: string[] = [];
  private tail = '';
  feed(d: Buffer): void {
    const text = this.tail + d.toString('latin1');
    const lines = text.split('\r\n');
    this.tail = lines.pop()!;
    for (const line of lines) {
      if (line[3] === '-') continue;
      this.replies++;
      // Any text of a JavaScript error reaching the client is a bug (e.g. "Maximum call stack size exceeded").
      if (/call stack|TypeError|ReferenceError|RangeError|Cannot read|undefined|\[object/i.test(line)) this.bad.push(line);
    }
  }
}

/** One plaintext session: the banner, then `chunks` written one after the other, then FIN. */
function plainSession(port: number, chunks: string[], kind: string): Promise<Outcome> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const counter = new ReplyCounter();
    let started = false;
    let timedOut = false;
    const t0 = Date.now();
    const timer = setTimeout(() => { timedOut = true; socket.destroy(); }, SESSION_BOUND_MS);
    socket.on('data', (d: Buffer) => {
      counter.feed(d);
      if (!started) {
        started = true;
        for (const c of chunks) socket.write(c, 'latin1');
        socket.end();
      }
    });
    socket.on('error', () => {}); // a reset from the relay is an end too
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ replies: counter.replies, bad: counter.bad, timedOut, ms: Date.now() - t0, kind });
    });
  });
}

/** STARTTLS, then one of: a real handshake and a burst inside TLS, garbage, or the connection dropped. */
function tlsSession(port: number, g: Gen): Promise<Outcome> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const counter = new ReplyCounter();
    let timedOut = false;
    const t0 = Date.now();
    const timer = setTimeout(() => { timedOut = true; socket.destroy(); }, SESSION_BOUND_MS);
    let stage = 0;
    const kind = g.pick(['handshake', 'handshake-drop', 'garbage', 'drop', 'inject'] as const);
    const finish = (): void => {
      clearTimeout(timer);
      resolve({ replies: counter.replies, bad: counter.bad, timedOut, ms: Date.now() - t0, kind: `tls-${kind}` });
    };
    const onPlain = (d: Buffer): void => {
      counter.feed(d);
      if (stage === 0) {
        stage = 1;
        socket.write(`EHLO client.test\r\nSTARTTLS\r\n${kind === 'inject' ? 'MAIL FROM:<evil@example.org>\r\nRCPT TO:<x@example.com>\r\n' : ''}`);
      } else if (stage === 1 && /(^|\r\n)220 /.test(d.toString('latin1'))) {
        stage = 2;
        if (kind === 'drop') {
          socket.destroy();
          return;
        }
        if (kind === 'garbage') {
          socket.write(g.bytes(1 + g.int(2000)), 'latin1');
          return void socket.end();
        }
        socket.removeListener('data', onPlain);
        const secure = tls.connect({ socket, rejectUnauthorized: false });
        secure.on('error', () => {});
        secure.on('secureConnect', () => {
          if (kind === 'handshake-drop') return secure.destroy();
          let burst = 'EHLO client.test\r\n';
          const n = g.int(500);
          for (let i = 0; i < n; i++) burst += g.chance(0.1) ? g.transaction() : `${g.command().replace(/^AUTH.*/, 'NOOP')}\r\n`;
          secure.write(burst, 'latin1');
          secure.end('QUIT\r\n');
        });
        secure.on('data', (b: Buffer) => counter.feed(b));
        secure.on('close', () => socket.destroy());
      }
    };
    socket.on('data', onPlain);
    socket.on('error', () => {});
    socket.on('close', finish);
  });
}

/** The bytes of one plaintext session: a short exchange, a long pipelined burst, or raw noise. */
function plainChunks(g: Gen): { chunks: string[]; kind: string } {
  const kind = g.rnd();
  const chunks: string[] = [];
  if (kind < 0.05) {
    // noise: random bytes, a few writes
    for (let i = 0, n = 1 + g.int(4); i < n; i++) chunks.push(g.bytes(g.int(4000)));
    return { chunks, kind: 'noise' };
  }
  const long = kind < 0.55;
  const writes = long ? 1 + g.int(4) : 1;
  for (let w = 0; w < writes; w++) {
    let s = w === 0 ? `EHLO client${g.int(9)}.test\r\n` : '';
    const n = long ? 500 + g.int(3000) : 1 + g.int(30);
    for (let i = 0; i < n; i++) s += g.chance(0.05) ? g.transaction() : `${g.command()}\r\n`;
    chunks.push(s);
  }
  const end = g.rnd();
  let ending = 'fin';
  if (end < 0.1) {
    chunks.push(`MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n${g.body(true)}`); // DATA without its dot, then FIN
    ending = 'open-data';
  } else if (end < 0.2) {
    chunks.push('NOOP'); // a command without its line end
    ending = 'partial-line';
  } else if (end < 0.8) {
    chunks.push('QUIT\r\n');
    ending = 'quit';
  }
  return { chunks, kind: `${long ? 'burst' : 'short'}-${ending}` };
}

async function waitForNoSessions(r: TestRelay, ms: number): Promise<number> {
  const until = Date.now() + ms;
  while (r.listener.stats().connections > 0 && Date.now() < until) await new Promise((res) => setTimeout(res, 20));
  return r.listener.stats().connections;
}

function measure(): { heap: number; rss: number } {
  gc();
  gc();
  const m = process.memoryUsage();
  // Buffers live outside the V8 heap: counted too.
  return { heap: m.heapUsed + m.external, rss: m.rss };
}

// Measured: 1,007,524 commands in 291 s on 2 CPUs shared with 7 other jobs (the process got 15% of a
// CPU: 40 s of CPU time); hence a timeout of its own above scripts/test.sh's 300 s.
test(`fuzzing the SMTP dialogue: ${TARGET.toLocaleString('en')} commands, no crash, no leaked session, bounded memory`, { timeout: 900_000 }, async (t) => {
  t.diagnostic(`seed ${SEED} (FUZZ_SEED=${SEED} to repeat)`);
  const r = await startRelay([
    'access:',
    '  relay:',
    '    mode: only',
    '    list: [127.0.0.1]',
    'auth:',
    '  enabled: true',
    'limits:',
    '  maxMessageSize: 64KB',
    '  maxConnectionsPerClient: 50',
    '',
  ].join('\n'));
  const g = new Gen(prng(SEED));
  const totals = { replies: 0, sessions: 0, tlsSessions: 0, queued: 0 };
  const bad: string[] = [];
  const notEnded: string[] = [];
  const byKind: Record<string, { n: number; ms: number; max: number }> = {};
  const runBatch = async (until: number): Promise<void> => {
    while (totals.replies < until) {
      const batch: Array<Promise<Outcome>> = [];
      for (let i = 0; i < PARALLEL; i++) {
        totals.sessions++;
        if (g.chance(0.1)) {
          totals.tlsSessions++;
          batch.push(tlsSession(r.port, g));
        } else {
          const { chunks, kind } = plainChunks(g);
          batch.push(plainSession(r.port, chunks, kind));
        }
      }
      for (const o of await Promise.all(batch)) {
        totals.replies += o.replies;
        bad.push(...o.bad);
        if (o.timedOut) notEnded.push(o.kind);
        const k = (byKind[o.kind] ??= { n: 0, ms: 0, max: 0 });
        k.n++;
        k.ms += o.ms;
        k.max = Math.max(k.max, o.ms);
      }
      // The recording queue and log would grow with the run; the relay's own memory is what is measured.
      totals.queued += r.queue.messages.length;
      r.queue.messages.length = 0;
      for (const l of r.logs) if (/call stack|TypeError|ReferenceError/.test(JSON.stringify(l))) bad.push(JSON.stringify(l));
      r.logs.length = 0;
    }
  };
  try {
    await runBatch(Math.min(20_000, TARGET / 10)); // warm-up: code paths compiled, pools filled
    assert.equal(await waitForNoSessions(r, 10_000), 0, `seed ${SEED}: sessions left open after the warm-up`);
    const before = measure();
    const t0 = Date.now();
    await runBatch(TARGET);
    const open = await waitForNoSessions(r, 30_000);
    const after = measure();
    t.diagnostic(`${totals.replies} replies in ${totals.sessions} sessions (${totals.tlsSessions} with STARTTLS), ${totals.queued} messages queued, ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    t.diagnostic(`session kinds (count, mean ms, max ms): ${Object.entries(byKind).map(([k, v]) => `${k} ${v.n}/${Math.round(v.ms / v.n)}/${v.max}`).join(', ')}`);
    t.diagnostic(`heap ${(before.heap / 1e6).toFixed(1)} -> ${(after.heap / 1e6).toFixed(1)} MB, RSS ${(before.rss / 1e6).toFixed(1)} -> ${(after.rss / 1e6).toFixed(1)} MB (after GC)`);
    assert.deepEqual(bad.slice(0, 5), [], `seed ${SEED}: internal errors reached clients or logs`);
    assert.deepEqual(notEnded.slice(0, 5), [], `seed ${SEED}: sessions the relay never ended (cut by the client after ${SESSION_BOUND_MS} ms)`);
    assert.equal(open, 0, `seed ${SEED}: ${open} sessions still open at the end`);
    assert.ok(totals.replies >= TARGET, `seed ${SEED}: only ${totals.replies} commands answered`);
    assert.ok(totals.queued > 0, `seed ${SEED}: no message was accepted at all (the generator is broken)`);
    assert.ok(after.heap - before.heap < HEAP_BOUND, `seed ${SEED}: heap grew by ${((after.heap - before.heap) / 1e6).toFixed(1)} MB`);
    assert.ok(after.rss - before.rss < RSS_BOUND, `seed ${SEED}: RSS grew by ${((after.rss - before.rss) / 1e6).toFixed(1)} MB`);
  } finally {
    await r.close();
  }
});
