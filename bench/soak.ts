/**
 * Crash soak: `npm run soak` (issue 14 points 1-2). Loopback only, bounded in time and count.
 *
 * `smarthost serve` relays to an smtp-server upstream on loopback while SESSIONS clients send
 * MESSAGES messages (one per connection, sizes 200 B to 60 KB) and the relay is SIGKILLed at random
 * instants (seeded, spread over the load) KILLS times, restarted on the same spool each time. A client whose message got
 * no 250 sends it again (as a device would). At the end every message that got 250 must have
 * reached the upstream intact (its body is a function of its subject, checked byte for byte).
 *
 * Printed: accepted, delivered, lost (must be 0) and duplicated, split into client resends (a copy
 * beyond the first that the client caused: it sent again after an attempt whose DATA had been
 * sent but which got no reply) and relay redeliveries (the rest: delivered, killed before the
 * spool recorded it, delivered again after the restart). Also the messages recovery put back from
 * active/ (the relay's own count, from its log).
 *
 *   npm run soak -- --messages 3000 --kills 100 --sessions 10 --seed 1 --max-seconds 1200
 * Exit status 1 if anything was lost, damaged or left in the queue.
 */
import { createHash } from 'node:crypto';
import { readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import net from 'node:net';
import { SMTPServer } from 'smtp-server';
import { freePort, startRelay, type RelayProcess } from '../test/helpers/relay.ts';

const { values: args } = parseArgs({
  options: {
    messages: { type: 'string', default: '3000' },
    kills: { type: 'string', default: '100' },
    sessions: { type: 'string', default: '10' },
    seed: { type: 'string', default: String(Date.now() % 100000) },
    'max-seconds': { type: 'string', default: '1800' },
  },
});
const MESSAGES = Number(args.messages);
const KILLS = Number(args.kills);
const SESSIONS = Number(args.sessions);
const SEED = Number(args.seed);
const DEADLINE = Date.now() + Number(args['max-seconds']) * 1000;

let seed = SEED >>> 0;
function rnd(): number {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

/** The body a subject must arrive with: deterministic, 200 B to 60 KB. */
function bodyOf(subject: string): string {
  const h = createHash('sha256').update(subject).digest('hex');
  const size = 200 + (parseInt(h.slice(0, 8), 16) % 60_000);
  const line = `${h}${h}\r\n`;
  return line.repeat(Math.ceil(size / line.length)).slice(0, size).replace(/\r?$/, '');
}

const delivered = new Map<string, number>();
let damaged = 0;
const upstream = new SMTPServer({
  authOptional: true, disabledCommands: ['STARTTLS', 'AUTH'], logger: false, disableReverseLookup: true, closeTimeout: 200, size: 0,
  onData(stream, _session, cb) {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const subject = /^Subject: (.*)$/m.exec(text)?.[1]?.trim() ?? '?';
      const body = text.slice(text.indexOf('\r\n\r\n') + 4).replace(/\r\n$/, '');
      if (body !== bodyOf(subject)) damaged++;
      delivered.set(subject, (delivered.get(subject) ?? 0) + 1);
      cb(null, '2.0.0 Ok');
    });
  },
});
upstream.on('error', () => undefined); // connections cut by each SIGKILL
const upPort = await freePort();
await new Promise<void>((resolve) => upstream.listen(upPort, '127.0.0.1', resolve));

const yaml = [
  'upstreams:',
  '  - name: loopback',
  `    url: smtp://127.0.0.1:${upPort}`,
  'delivery:',
  '  scanInterval: 300ms',
  '  retry: [1s]',
  'ndr:',
  '  to: off',
].join('\n');
let relay: RelayProcess = await startRelay(yaml);
const { dir, port } = relay;
let requeuedActive = 0;
/** Adds up recovery's "put back from active/" counts from a relay's JSON log. */
function countRecovery(output: string): void {
  for (const line of output.split('\n')) {
    if (!line.includes('spool recovered')) continue;
    try {
      requeuedActive += (JSON.parse(line) as { requeuedActive?: number }).requeuedActive ?? 0;
    } catch { /* not JSON */ }
  }
}

const accepted = new Set<string>();
/** Attempts whose DATA went out but got no 250 (the relay may have it): a resend may duplicate. */
const uncertain = new Map<string, number>();
let attempts = 0;
let next = 0;
let stop = false;
const t0 = Date.now();

/**
 * One message over a raw socket, one command at a time. Resolves true on 250 after the dot; throws
 * with `afterDot` set when the connection failed after the final dot was written (the relay may
 * have committed it: a resend may duplicate it).
 */
function sendOnce(subject: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const steps = ['EHLO soak.test\r\n', 'MAIL FROM:<scanner@office.example>\r\n', 'RCPT TO:<soak@example.com>\r\n', 'DATA\r\n',
      `From: scanner@office.example\r\nTo: soak@example.com\r\nSubject: ${subject}\r\n\r\n${bodyOf(subject).replace(/^\./gm, '..')}\r\n.\r\n`, 'QUIT\r\n'];
    const expect = [220, 250, 250, 250, 354, 250, 221];
    let step = 0;
    let afterDot = false;
    let buffer = '';
    let settled = false;
    const fail = (why: string) => {
      if (settled) return;
      settled = true;
      socket.destroy();
      reject(Object.assign(new Error(why), { afterDot }));
    };
    socket.setTimeout(10_000, () => fail('timeout'));
    socket.on('error', (e) => fail(e.message));
    socket.on('close', () => (step >= 6 ? (settled = true, resolve()) : fail('closed')));
    socket.on('data', (d: Buffer) => {
      buffer += d.toString('latin1');
      for (let nl = buffer.indexOf('\r\n'); nl >= 0; nl = buffer.indexOf('\r\n')) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 2);
        if (line[3] === '-') continue;
        if (Number(line.slice(0, 3)) !== expect[step]) return fail(line);
        if (step === 5) {
          accepted.add(subject); // the 250 after the dot
          if (!settled) {
            settled = true;
            resolve();
          }
          socket.end('QUIT\r\n');
          step = 7;
          return;
        }
        if (step === 4) afterDot = true;
        socket.write(steps[step]);
        step++;
      }
    });
  });
}

async function client(): Promise<void> {
  let subject: string | undefined;
  while (!stop && Date.now() < DEADLINE) {
    if (subject === undefined) {
      if (next >= MESSAGES) return;
      subject = `soak-${next++}`;
    }
    attempts++;
    try {
      await sendOnce(subject);
      subject = undefined;
    } catch (e) {
      const s: string = subject as string;
      if ((e as { afterDot?: boolean }).afterDot) uncertain.set(s, (uncertain.get(s) ?? 0) + 1);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

const clients = Array.from({ length: SESSIONS }, () => client());
let kills = 0;
// The kills are spread over the load, whatever the machine's speed: kill k comes at a random
// instant within the k-th of KILLS equal slices of the messages (counted by 250s received).
const slice = MESSAGES / (KILLS + 1);
while (kills < KILLS && Date.now() < DEADLINE) {
  const target = Math.floor((kills + 0.5 + rnd()) * slice);
  while (accepted.size < target && Date.now() < DEADLINE) await new Promise((r) => setTimeout(r, 5));
  if (accepted.size >= MESSAGES) break;
  countRecovery(relay.output());
  await relay.kill();
  kills++;
  relay = await startRelay(yaml, { dir, port });
  if (kills % 10 === 0) process.stderr.write(`${kills} kills, ${accepted.size} accepted, ${Math.round((Date.now() - t0) / 1000)} s\n`);
}
await Promise.all(clients);
stop = true;

// Drain: every accepted message delivered and the queue empty (bounded).
const queued = () => ['incoming', 'active', 'deferred', 'hold'].flatMap((f) => readdirSync(path.join(relay.mailroot, f)));
const drainEnd = Math.min(DEADLINE, Date.now() + 300_000);
while (Date.now() < drainEnd && ([...accepted].some((s) => !delivered.has(s)) || queued().length)) await new Promise((r) => setTimeout(r, 200));
countRecovery(relay.output());
const badmail = readdirSync(path.join(relay.mailroot, 'badmail'));
const leftInQueue = queued().length;
await relay.stop();
await new Promise<void>((resolve) => upstream.close(() => resolve()));
rmSync(dir, { recursive: true, force: true });

const lost = [...accepted].filter((s) => !delivered.has(s));
let clientResends = 0;
let relayRedeliveries = 0;
for (const [subject, n] of delivered) {
  const extra = n - 1;
  if (extra <= 0) continue;
  const byClient = Math.min(extra, uncertain.get(subject) ?? 0);
  clientResends += byClient;
  relayRedeliveries += extra - byClient;
}
const unasked = [...delivered.keys()].filter((s) => !accepted.has(s)).length;
const result = {
  seed: SEED,
  sessions: SESSIONS,
  kills,
  seconds: Math.round((Date.now() - t0) / 1000),
  attempts,
  accepted: accepted.size,
  delivered: [...delivered.keys()].filter((s) => accepted.has(s)).length,
  lost: lost.length,
  damaged,
  duplicated: clientResends + relayRedeliveries,
  clientResends,
  relayRedeliveries,
  deliveredWithoutA250: unasked,
  requeuedFromActive: requeuedActive,
  leftInQueue,
  badmail: badmail.length,
};
console.log(JSON.stringify(result, null, 2));
if (lost.length) console.log(`lost: ${lost.slice(0, 20).join(' ')}`);
process.exit(lost.length || damaged || badmail.length || result.leftInQueue ? 1 : 0);
