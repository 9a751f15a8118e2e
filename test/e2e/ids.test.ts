// Ids that match: the Received: header the relay adds names the queue id the client was given in
// "250 … queued as ID" (with and without sender rules), and the queue commands and history take any
// unique start of an id, listing the matches when the start is ambiguous.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startRelay, CLI, NODE, type RelayProcess } from '../helpers/relay.ts';
import { startUpstream } from '../helpers/upstream.ts';
import { openSpool } from '../../src/queue/spool.ts';
import { openHistory } from '../../src/history/index.ts';
import { ManualClock, systemClock } from '../../src/core/clock.ts';
import { silentLogger } from '../../src/core/logger.ts';

const cleanups: Array<() => Promise<void>> = [];
after(async () => { for (const c of cleanups.reverse()) await c().catch(() => {}); });

function run(cmd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 60_000 }, (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });
}

for (const senders of [false, true]) {
  test(`the Received: header names the id of "250 … queued as ID"${senders ? ' (sender rule in rewrite mode)' : ''}`, { timeout: 120_000 }, async () => {
    const up = await startUpstream();
    cleanups.push(() => up.stop());
    const relay: RelayProcess = await startRelay([
      'upstreams:',
      `  - { name: isp, url: "smtp://127.0.0.1:${up.port}" }`,
      'delivery: { scanInterval: 200ms }',
      ...(senders ? ['senders:', '  - { clients: ["127.0.0.1"], allow: ["*"], mode: rewrite, rewriteTo: scanner@contoso.com }'] : []),
    ].join('\n'));
    cleanups.push(() => relay.stop());
    const r = await run('swaks', ['--server', `127.0.0.1:${relay.port}`, '--from', 'printer@contoso.com', '--to', 'boss@fabrikam.example', '--h-Subject', 'ids']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const id = /250 2\.0\.0 Ok: queued as (\S+)/.exec(r.stdout)?.[1];
    assert.ok(id, r.stdout);
    const [msg] = await up.waitFor(1);
    const received = /^Received: [\s\S]*?;[^\r\n]*/m.exec(msg.raw.toString())?.[0] ?? '';
    assert.match(received, new RegExp(`with E?SMTP\\w* id ${id}\\b`), `Received: names the client's queue id ${id}:\n${received}`);
  });
}

test('queue show / retry / delete and history take a unique start of an id; an ambiguous one lists the matches', { timeout: 60_000 }, async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'sh-ids-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const cfg = path.join(dir, 'smarthost.yaml');
  await writeFile(cfg, 'mailroot: ./spool\n');
  const spool = await openSpool({ mailrootPath: path.join(dir, 'spool') }, { clock: systemClock, logger: silentLogger() });
  const env = { mailFrom: 'scanner@contoso.com', recipients: ['a@x.org'], client: { address: '10.0.0.7', source: 'smtp' as const }, receivedAt: new Date().toISOString(), size: 0 };
  const a = await spool.enqueue(env, Buffer.from('Subject: first\r\n\r\nx\r\n'), '20261125T174501Z-aaaaaaaaaa-0001');
  const b = await spool.enqueue(env, Buffer.from('Subject: second\r\n\r\ny\r\n'), '20261125T174501Z-abbbbbbbbb-0002');
  await spool.close();
  const cli = (args: string[]) => run(NODE, [CLI, ...args, '--config', cfg]);

  const show = await cli(['queue', 'show', '20261125T174501Z-aa']);
  assert.equal(show.code, 0, show.stderr);
  assert.match(show.stdout, new RegExp(`Queue id: +${a}`));
  assert.match(show.stdout, /Subject: first/);

  const ambiguous = await cli(['queue', 'show', '20261125T174501Z-a']);
  assert.equal(ambiguous.code, 2);
  assert.match(ambiguous.stderr, new RegExp(`"20261125T174501Z-a" is the start of 2 queue ids: ${a}, ${b}; give more of the id`));

  const retry = await cli(['queue', 'retry', '20261125T174501Z-ab']);
  assert.equal(retry.code, 0, retry.stderr);
  assert.match(retry.stdout, new RegExp(`^${b}: due now`));
  const del = await cli(['queue', 'delete', '20261125T174501Z-ab']);
  assert.equal(del.code, 0, del.stderr);
  assert.match(del.stdout, new RegExp(`^${b}: deleted`));
  const none = await cli(['queue', 'show', '20991231']);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /no message with queue id 20991231/);

  // history: the same rule for its lookups
  const history = openHistory({ history: { store: 'sqlite', retention: 86_400_000 }, mailrootPath: dir } as never, { logger: silentLogger(), clock: new ManualClock(), purgeEveryMs: 0 });
  t.after(() => history.close());
  for (const id of [a, b]) history.record({ type: 'accepted', id, envelope: env, at: env.receivedAt });
  await history.flush();
  assert.equal((await history.get('20261125T174501Z-aa'))?.id, a);
  assert.equal((await history.get(b))?.id, b);
  await assert.rejects(history.get('20261125T174501Z-a'), /is the start of 2 queue ids/);
  assert.equal(await history.get('20991231'), undefined);
});
