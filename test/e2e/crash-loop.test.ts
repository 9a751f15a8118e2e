// "Never lose a message", under load and repeated crashes: `smarthost serve` is killed with SIGKILL
// four times while three clients send (one message per connection, sizes from 200 octets to 60 KB,
// so delivered files are reused for longer and shorter messages) and restarted on the same spool
// each time. Every message a client got 250 for must reach the upstream at least once, the queue
// must empty, and nothing may land in badmail (no file left half-written where it counts) but the
// messages set aside because their client never got 250 (src/queue/acknowledge.ts).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import nodemailer from 'nodemailer';
import { SMTPServer } from 'smtp-server';
import { freePort, startRelay, type RelayProcess } from '../helpers/relay.ts';

const KILLS = 4;
/** Messages accepted between two kills (and after the last): the load goes on between them. */
const PER_PHASE = 10;
const received = new Map<string, number>();
/** Woken on every accepted and every received message: the test waits for progress, not for time. */
let wake: Array<() => void> = [];
const progress = (): void => { for (const w of wake.splice(0)) w(); };

/** Resolves when `done()` holds, re-checked at each accepted or received message; fails after `ms`. */
async function until(what: string, done: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!done()) {
    const left = end - Date.now();
    if (left <= 0) assert.fail(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, left);
      wake.push(() => { clearTimeout(timer); resolve(); });
    });
  }
}
let upstream: SMTPServer | undefined;
let relay: RelayProcess | undefined;

after(async () => {
  await relay?.stop();
  if (upstream) await new Promise<void>((resolve) => upstream!.close(() => resolve()));
  if (relay) rmSync(relay.dir, { recursive: true, force: true });
});

test('SIGKILL four times under load: every message that got 250 is delivered, the queue empties, badmail stays empty', { timeout: 300_000 }, async (t) => {
  const upPort = await freePort();
  upstream = new SMTPServer({
    authOptional: true, disabledCommands: ['STARTTLS', 'AUTH'], logger: false, disableReverseLookup: true, closeTimeout: 200,
    onData(stream, _session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const subject = /^Subject: (.*)$/m.exec(Buffer.concat(chunks).toString('utf8'))?.[1]?.trim() ?? '?';
        received.set(subject, (received.get(subject) ?? 0) + 1);
        progress();
        cb(null, '2.0.0 Ok');
      });
    },
  });
  // the relay's connections are cut by each SIGKILL: expected here
  upstream.on('error', () => undefined);
  await new Promise<void>((resolve) => upstream!.listen(upPort, '127.0.0.1', resolve));
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
  relay = await startRelay(yaml);
  const { dir, port } = relay;

  const accepted: string[] = [];
  let refused = 0;
  let sent = 0;
  let stop = false;
  async function client(name: string): Promise<void> {
    while (!stop) {
      const subject = `${name}-${sent++}`;
      // sizes vary so that a reused file is sometimes cut and sometimes grown
      const text = 'x'.repeat(200 + ((sent * 7919) % 60_000));
      const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true, connectionTimeout: 2000, greetingTimeout: 2000, socketTimeout: 5000 });
      try {
        await transport.sendMail({ from: 'scanner@office.example', to: 'crash@example.com', subject, text });
        accepted.push(subject);
        progress();
      } catch {
        refused++;
        await new Promise((r) => setTimeout(r, 50));
      } finally {
        transport.close();
      }
    }
  }
  const clients = [client('a'), client('b'), client('c')];
  try {
    // each kill comes after PER_PHASE more messages were accepted (a few more each time, so the kill
    // lands at different points of the work), however slow the machine: progress, not a time window
    for (let k = 0; k <= KILLS; k++) {
      const goal = accepted.length + PER_PHASE + (k * 3) % 5;
      await until(`${goal} accepted messages (phase ${k}; ${refused} refused so far)`, () => accepted.length >= goal, 60_000);
      if (k === KILLS) break;
      await relay.kill();
      relay = await startRelay(yaml, { dir, port });
    }
  } finally {
    stop = true;
    await Promise.all(clients);
  }
  assert.ok(accepted.length >= (KILLS + 1) * PER_PHASE, `the load went on between the kills (${accepted.length} accepted, ${refused} refused)`);

  await until('every accepted message at the upstream', () => accepted.every((s) => received.has(s)), 60_000).catch(() => {});
  const missing = accepted.filter((s) => !received.has(s));
  assert.deepEqual(missing, [], 'every message that got 250 reached the upstream');
  const queued = () => ['incoming', 'active', 'deferred', 'hold'].flatMap((f) => readdirSync(path.join(relay!.mailroot, f)));
  // removal of delivered files is batched off the SMTP path: bounded poll of the folders
  for (let i = 0; i < 150 && queued().length; i++) await new Promise((r) => setTimeout(r, 200));
  assert.deepEqual(queued(), [], 'the queue empties');
  // Only messages set aside as never acknowledged (killed between commit and 250, src/queue/acknowledge.ts)
  // may be there, and their clients must indeed have had no 250 for them.
  const badmail = readdirSync(path.join(relay.mailroot, 'badmail'));
  for (const f of badmail.filter((n) => n.endsWith('.BDR'))) {
    assert.match(readFileSync(path.join(relay.mailroot, 'badmail', f), 'utf8'), /^Not acknowledged: /, `${f}: no queue file was found damaged`);
    const subject = /^Subject: (.*)$/m.exec(readFileSync(path.join(relay.mailroot, 'badmail', f.replace(/\.BDR$/, '.BAD')), 'utf8'))?.[1]?.trim();
    assert.ok(subject && !accepted.includes(subject), `${f}: set aside as unacknowledged, but its client got 250 for ${subject}`);
  }
  assert.equal(badmail.length % 2, 0, 'each .BAD has its .BDR');
  const duplicates = [...received.values()].filter((n) => n > 1).length;
  t.diagnostic(`accepted ${accepted.length}, refused during restarts ${refused}, delivered twice ${duplicates} (being delivered, or delivered and not yet removed, when killed), set aside as unacknowledged ${badmail.length / 2}`);
});
