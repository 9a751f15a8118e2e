// A message answered 250 by a real relay (python's smtplib as the client) is acknowledged: its queue
// file no longer carries the "no 250 yet" mark (src/queue/acknowledge.ts), so a SIGKILL of the relay
// afterwards, in the same kernel boot, keeps it (it is not set aside in badmail/) and it is
// delivered once an upstream is there. The check that can fail: recovery sets aside a marked file.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { SMTPServer } from 'smtp-server';
import { freePort, startRelay, type RelayProcess } from '../helpers/relay.ts';

let relay: RelayProcess | undefined;
let upstream: SMTPServer | undefined;
after(async () => {
  await relay?.stop();
  if (upstream) await new Promise<void>((resolve) => upstream!.close(() => resolve()));
  if (relay) rmSync(relay.dir, { recursive: true, force: true });
});

const PY = `
import smtplib, sys
s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]), timeout=30)
# raises unless every recipient and the data got 2xx
s.sendmail('scanner@office.example', ['ack@example.com'], 'Subject: acknowledged\\r\\n\\r\\nscan\\r\\n')
s.quit()
`;

test('a message that got 250 is acknowledged: kept across a SIGKILL and delivered', { timeout: 120_000 }, async () => {
  // no upstream at first: the message waits in incoming/, where recovery looks for the mark
  relay = await startRelay('');
  const { dir, port, mailroot } = relay;
  execFileSync('/usr/bin/python3', ['-c', PY, String(port)], { timeout: 60_000 });
  const queued = readdirSync(path.join(mailroot, 'incoming')).filter((n) => n.endsWith('.eml'));
  assert.equal(queued.length, 1, 'sendmail raised no error, so the relay said 250 and queued it');
  assert.equal(statSync(path.join(mailroot, 'incoming', queued[0])).mode & 0o100, 0, 'acknowledged before its 250');
  await relay.kill();

  const received: string[] = [];
  let got: () => void = () => {};
  const arrived = new Promise<void>((resolve) => { got = resolve; });
  const upPort = await freePort();
  upstream = new SMTPServer({
    authOptional: true, disabledCommands: ['STARTTLS', 'AUTH'], logger: false, disableReverseLookup: true,
    onData(stream, _session, cb) {
      let text = '';
      stream.on('data', (c: Buffer) => { text += c.toString(); });
      stream.on('end', () => { received.push(text); got(); cb(null, '2.0.0 Ok'); });
    },
  });
  await new Promise<void>((resolve) => upstream!.listen(upPort, '127.0.0.1', resolve));
  relay = await startRelay(['upstreams:', '  - name: loopback', `    url: smtp://127.0.0.1:${upPort}`].join('\n'), { dir, port });
  await arrived;
  assert.equal(received.length, 1);
  assert.match(received[0], /Subject: acknowledged/);
  assert.deepEqual(readdirSync(path.join(mailroot, 'badmail')), [], 'not set aside');
  assert.doesNotMatch(relay.output(), /set aside in badmail/);
});
