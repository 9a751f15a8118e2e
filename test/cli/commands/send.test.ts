import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import os from 'node:os';
import path from 'node:path';
import { startUpstream } from '../../transports/upstream-server.ts';

const run = promisify(execFile);
const BIN = path.resolve('bin/smarthost.js');
const cli = (args: string[], env: NodeJS.ProcessEnv = {}) => run(process.execPath, [BIN, ...args], { timeout: 20_000, env: { ...process.env, ...env } }).then((r) => ({ ...r, code: 0 })).catch((e: { stdout: string; stderr: string; code: number }) => ({ stdout: e.stdout, stderr: e.stderr, code: e.code }));

test('send --server: a test message through an SMTP server, with --trace', { timeout: 60_000 }, async (t) => {
  const up = await startUpstream({ rcpt: (a) => (a.startsWith('bad') ? [550, '5.1.1 unknown'] : undefined) });
  t.after(() => up.close());
  const r = await cli(['send', '--from', 'scanner@contoso.com', '--to', 'boss@contoso.com', 'bad@contoso.com', '--subject', 'Hello test', '--server', `127.0.0.1:${up.port}`, '--trace']);
  assert.equal(r.code, 1, 'one recipient refused → exit 1');
  assert.match(r.stdout, /MAIL FROM:<scanner@contoso\.com>/);
  assert.match(r.stdout, /accepted  boss@contoso\.com/);
  assert.match(r.stdout, /refused   bad@contoso\.com/);
  assert.equal(up.received.length, 1);
  assert.match(up.received[0].data.toString(), /Subject: Hello test/);
});

test('send --upstream: straight to a STARTTLS+AUTH upstream; the password never shows in the trace', { timeout: 60_000 }, async (t) => {
  const up = await startUpstream({ auth: { user: 'scanner@contoso.com', pass: 'Pa55word-xyz' } }, true);
  t.after(() => up.close());
  const dir = await mkdtemp(path.join(os.tmpdir(), 'sh-cli-send-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(path.join(dir, 'ca.pem'), up.certPem!);
  const cfg = path.join(dir, 'smarthost.yaml');
  await writeFile(cfg, [
    'mailroot: ./spool',
    'upstreams:',
    `  - name: m365`,
    `    url: smtp+starttls://127.0.0.1:${up.port}`,
    '    username: scanner@contoso.com',
    '    password: { env: TEST_UPSTREAM_PASSWORD }',
    '    ca: ca.pem',
    '',
  ].join('\n'));
  const r = await cli(['send', '--from', 'scanner@contoso.com', '--to', 'boss@contoso.com', '--upstream', 'm365', '--config', cfg, '--trace'], { TEST_UPSTREAM_PASSWORD: 'Pa55word-xyz' });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /STARTTLS/);
  assert.match(r.stdout, /AUTH (PLAIN|LOGIN)/);
  assert.match(r.stdout, /delivered boss@contoso\.com/);
  assert.ok(!r.stdout.includes('Pa55word-xyz'));
  assert.ok(!r.stdout.includes(Buffer.from('Pa55word-xyz').toString('base64')));
  assert.ok(!r.stdout.includes(Buffer.from('\u0000scanner@contoso.com\u0000Pa55word-xyz').toString('base64')));
  assert.equal(up.received[0].user, 'scanner@contoso.com');

  const bad = await cli(['send', '--from', 'a@contoso.com', '--to', 'b@contoso.com', '--upstream', 'm365', '--config', cfg], { TEST_UPSTREAM_PASSWORD: 'wrong' });
  assert.equal(bad.code, 1);
  assert.match(bad.stdout, /535/);
  assert.match(bad.stdout, /What to do:/);
});
