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
 * `--peers smarthost,postfix` runs the same soak (same seed, counts and kill instants, counted in
 * 250s received) against each peer in turn, each with its own fresh upstream: Postfix as a private
 * instance relaying to the loopback upstream (bench/postfix.ts), its whole process tree (master and
 * children, one process group) SIGKILLed in one instant and restarted with `postfix -c DIR start`.
 * For both, `inActiveAtKill` counts the queue files found in active/ right after each kill (what the
 * restart puts back in line) and `deliveredByLastKill` the copies the upstream had by the last kill
 * (the deliveries a kill could catch half-recorded). docs/reliability.md has the fields and figures.
 *
 *   npm run soak -- --messages 3000 --kills 100 --sessions 10 --seed 1 --max-seconds 1200 [--peers smarthost,postfix]
 * Exit status 1 if anything was lost, damaged or left in the queue.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import net from 'node:net';
import { SMTPServer } from 'smtp-server';
import { freePort, startRelay, waitPort, type RelayProcess } from '../test/helpers/relay.ts';
import { killPostfix, postfixQueue, startPostfix, stopPostfix, writePostfixConfig } from './postfix.ts';

const { values: args } = parseArgs({
  options: {
    messages: { type: 'string', default: '3000' },
    kills: { type: 'string', default: '100' },
    sessions: { type: 'string', default: '10' },
    seed: { type: 'string', default: String(Date.now() % 100000) },
    'max-seconds': { type: 'string', default: '1800' },
    peers: { type: 'string' },
    peer: { type: 'string' },
  },
});
const MESSAGES = Number(args.messages);
const KILLS = Number(args.kills);
const SESSIONS = Number(args.sessions);
const SEED = Number(args.seed);
const DEADLINE = Date.now() + Number(args['max-seconds']) * 1000;
const PEERS = (args.peers ?? args.peer ?? 'smarthost').split(',').map((p) => p.trim());
for (const p of PEERS) if (p !== 'smarthost' && p !== 'postfix') throw new Error(`unknown peer ${p} (smarthost, postfix)`);

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

/** The relay under test: started once, then killed and restarted on the same queue. */
interface SoakPeer {
  port: number;
  kill(): Promise<void>;
  restart(): Promise<void>;
  /** Committed messages still queued (delivered ones gone). */
  queued(): number;
  /** Queue files in active/ now (counted right after a kill). */
  inActive(): number;
  /** What a run left aside: badmail/ (smarthost), corrupt/ (Postfix); not the messages set aside as never acknowledged. */
  aside(): number;
  /** smarthost: messages recovery set aside because their client never got 250 (src/queue/acknowledge.ts). */
  setAsideUnacknowledged?(): number;
  /** The relay's own count of messages put back from active/ (smarthost: its recovery log lines). */
  requeuedFromActive(): number | undefined;
  /** smarthost: messages recovery removed from active/ as settled, and recipients it marked delivered, from delivered.log. */
  spared?: { removedDelivered: number; recipientsTaken: number };
  /** Files of messages that never got a 250, left behind by a kill (Postfix's incomplete incoming files). */
  incomplete(): number;
  stop(): Promise<void>;
}

async function smarthostPeer(upPort: number): Promise<SoakPeer> {
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
  const { dir, port, mailroot } = relay;
  const spared = { removedDelivered: 0, recipientsTaken: 0 };
  let requeued = 0;
  /** Adds up recovery's "put back from active/" counts from a relay's JSON log (and what delivered.log spared). */
  const countRecovery = (output: string): void => {
    for (const line of output.split('\n')) {
      if (!line.includes('spool recovered')) continue;
      try {
        const r = JSON.parse(line) as { requeuedActive?: number; removedDelivered?: number; recipientsTaken?: number };
        requeued += r.requeuedActive ?? 0;
        spared.removedDelivered += r.removedDelivered ?? 0;
        spared.recipientsTaken += r.recipientsTaken ?? 0;
      } catch { /* not JSON */ }
    }
  };
  const files = (f: string) => readdirSync(path.join(mailroot, f)).filter((n) => n.endsWith('.eml'));
  // a .BDR saying so: the message's client never got 250 and sent it again (no loss: `lost` checks it)
  const unacknowledged = (bdr: string): boolean => {
    try {
      return readFileSync(path.join(mailroot, 'badmail', bdr), 'utf8').startsWith('Not acknowledged: ');
    } catch {
      return false;
    }
  };
  return {
    port,
    async kill() {
      countRecovery(relay.output());
      await relay.kill();
    },
    async restart() {
      relay = await startRelay(yaml, { dir, port });
    },
    queued: () => ['incoming', 'active', 'deferred', 'hold'].flatMap(files).length,
    inActive: () => files('active').length,
    aside: () => readdirSync(path.join(mailroot, 'badmail')).filter((n) => !unacknowledged(n.replace(/\.BAD$/, '.BDR'))).length,
    setAsideUnacknowledged: () => readdirSync(path.join(mailroot, 'badmail')).filter((n) => n.endsWith('.BDR') && unacknowledged(n)).length,
    requeuedFromActive: () => {
      countRecovery(relay.output());
      const n = requeued;
      requeued = 0; // counted once
      return n;
    },
    incomplete: () => 0,
    spared,
    async stop() {
      await relay.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Postfix as a relay to the same upstream. Its retry times are shortened to smarthost's soak
 * settings (retry after 1 s, queue scanned every second), so the drain takes as long.
 */
async function postfixPeer(upPort: number): Promise<SoakPeer> {
  const dir = mkdtempSync(path.join(tmpdir(), 'soak-postfix-'));
  const port = await freePort();
  const pf = writePostfixConfig(dir, port, upPort, ['queue_run_delay = 1s', 'minimal_backoff_time = 1s', 'maximal_backoff_time = 2s']);
  const start = async () => {
    startPostfix(pf);
    await waitPort(port, '127.0.0.1', 60_000);
  };
  await start();
  const active = () => {
    try {
      return readdirSync(path.join(pf.queue, 'active'), { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).length;
    } catch {
      return 0;
    }
  };
  return {
    port,
    kill: () => killPostfix(pf),
    restart: start,
    queued: () => postfixQueue(pf).ready,
    inActive: active,
    aside: () => postfixQueue(pf).corrupt,
    requeuedFromActive: () => undefined,
    incomplete: () => postfixQueue(pf).incomplete,
    async stop() {
      stopPostfix(pf);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function soak(peerName: string): Promise<Record<string, unknown>> {
  seed = SEED >>> 0; // the same kill instants for every peer
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

  const peer = peerName === 'postfix' ? await postfixPeer(upPort) : await smarthostPeer(upPort);
  const port = peer.port;
  const accepted = new Set<string>();
  /** Attempts whose DATA went out but got no 250 (the relay may have it): a resend may duplicate. */
  const uncertain = new Map<string, number>();
  let attempts = 0;
  let next = 0;
  let stop = false;
  let inActiveAtKill = 0;
  /** Copies the upstream had received by the last kill: deliveries a kill could catch half-recorded. */
  let copiesBeforeLastKill = 0;
  const loadStart = loadavg().map((x) => +x.toFixed(1));
  const t0 = Date.now();

  /**
   * One message over a raw socket, one command at a time. Resolves on 250 after the dot; throws
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
    await peer.kill();
    kills++;
    copiesBeforeLastKill = [...delivered.values()].reduce((a, b) => a + b, 0);
    inActiveAtKill += peer.inActive();
    await peer.restart();
    if (kills % 10 === 0) process.stderr.write(`${peerName}: ${kills} kills, ${accepted.size} accepted, ${Math.round((Date.now() - t0) / 1000)} s\n`);
  }
  await Promise.all(clients);
  stop = true;

  // Drain: every accepted message delivered and the queue empty (bounded).
  const drainEnd = Math.min(DEADLINE, Date.now() + 300_000);
  while (Date.now() < drainEnd && ([...accepted].some((s) => !delivered.has(s)) || peer.queued())) await new Promise((r) => setTimeout(r, 200));
  const requeuedFromActive = peer.requeuedFromActive();
  const aside = peer.aside();
  const setAside = peer.setAsideUnacknowledged?.();
  const leftInQueue = peer.queued();
  const incomplete = peer.incomplete();
  await peer.stop();
  await new Promise<void>((resolve) => upstream.close(() => resolve()));

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
    peer: peerName,
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
    deliveredByLastKill: copiesBeforeLastKill,
    inActiveAtKill,
    ...(requeuedFromActive === undefined ? {} : { requeuedFromActive }),
    ...(peer.spared ? { removedFromActiveAsDelivered: peer.spared.removedDelivered, recipientsMarkedDelivered: peer.spared.recipientsTaken } : {}),
    ...(setAside === undefined ? {} : { setAsideUnacknowledged: setAside }),
    leftInQueue,
    [peerName === 'postfix' ? 'corrupt' : 'badmail']: aside,
    ...(peerName === 'postfix' ? { incompleteLeft: incomplete } : {}),
    loadAtStart: loadStart,
    loadAtEnd: loadavg().map((x) => +x.toFixed(1)),
  };
  console.log(JSON.stringify(result, null, 2));
  if (lost.length) console.log(`${peerName} lost: ${lost.slice(0, 20).join(' ')}`);
  return { ...result, failed: Boolean(lost.length || damaged || aside || leftInQueue) };
}

let failed = false;
for (const p of PEERS) {
  const r = await soak(p);
  failed ||= Boolean(r.failed);
}
process.exit(failed ? 1 : 0);
