// Logs a person can read under a service manager: one line per event with an ISO time and a level
// name when stdout is not a terminal, journald priorities when stdout is the journal, JSON on request.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { textLine, stdoutIsJournal } from '../../src/core/logger.ts';
import { freePort } from '../helpers/relay.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const ISO_LINE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (TRACE|DEBUG|INFO |WARN |ERROR|FATAL) \S/;

test('textLine: time, level name, message, then the other fields as JSON, on one line', () => {
  const line = textLine(JSON.stringify({ level: 40, time: '2026-12-07T18:00:00.000Z', msg: 'upstream slow\nretrying', upstream: 'o365', err: { stack: 'a\nb' } }));
  assert.equal(line, '2026-12-07T18:00:00.000Z WARN  upstream slow retrying {"upstream":"o365","err":{"stack":"a\\nb"}}\n');
  assert.equal(textLine(JSON.stringify({ level: 50, time: 't', msg: 'x' }), true), '<3>t ERROR x\n');
  assert.equal(textLine(JSON.stringify({ level: 30, time: 't', msg: 'x' }), true), '<6>t INFO  x\n');
  assert.equal(textLine(JSON.stringify({ level: 20, time: 't', msg: 'x' }), true), '<7>t DEBUG x\n');
});

test('JOURNAL_STREAM counts only when it names stdout itself', () => {
  assert.equal(stdoutIsJournal({}), false);
  assert.equal(stdoutIsJournal({ JOURNAL_STREAM: '1:2' }), false);
  assert.equal(stdoutIsJournal({ JOURNAL_STREAM: 'garbage' }), false);
});

/** Runs serve with stdout a pipe (as under a service manager), until its listener is up; returns what it wrote. */
async function serveOutput(yamlExtra: string, journal: 'none' | 'stdout' | 'elsewhere', env: NodeJS.ProcessEnv = {}): Promise<string> {
  const dir = mkdtempSync(path.join(tmpdir(), 'sh-log-'));
  const port = await freePort();
  const file = path.join(dir, 'smarthost.yaml');
  writeFileSync(file, `mailroot: ./mailroot\nlisten: [{ address: 127.0.0.1, port: ${port}, tls: none }]\nweb: { enabled: false }\nhistory: { store: off }\n${yamlExtra}`);
  const base = { ...process.env, ...env };
  delete base.SMARTHOST_LOG_FORMAT;
  delete base.JOURNAL_STREAM;
  // The shell sets JOURNAL_STREAM the way systemd does: device:inode of the stream that is stdout
  // (or, for 'elsewhere', of stderr, which is a different pipe).
  const fd = journal === 'stdout' ? 1 : 2;
  const prefix = journal === 'none' ? '' : `JOURNAL_STREAM=$(stat -L -c %d:%i /proc/$$/fd/${fd}) `;
  const child = spawn('/bin/sh', ['-c', `${prefix}exec "$0" "$1" serve --config "$2"`, process.execPath, path.join(ROOT, 'bin/smarthost.js'), file], { cwd: dir, env: base, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr.on('data', (d) => { err += d; });
  return new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => {
      out += d;
      // 'smarthost is running' is the line written once every listener is up
      if (/smarthost is running/.test(out) && out.endsWith('\n')) child.kill('SIGTERM');
    });
    child.on('close', (code) => (/smarthost is running/.test(out) ? resolve(out) : reject(new Error(`serve exited ${code}:\n${out}${err}`))));
  });
}

test('serve with stdout piped: plain lines with ISO time and level, no JSON, no journal prefix', async () => {
  const out = await serveOutput('', 'none');
  const lines = out.trim().split('\n');
  assert.ok(lines.length >= 2, out);
  for (const l of lines) assert.match(l, ISO_LINE);
  assert.ok(lines.some((l) => /^\S+ INFO  smarthost is running \{.*"mailroot":/.test(l)), out);
});

test('serve under systemd (JOURNAL_STREAM names stdout): each line starts with its syslog priority', async () => {
  const out = await serveOutput('', 'stdout');
  const lines = out.trim().split('\n');
  for (const l of lines) assert.match(l, /^<[2-7]>\d{4}-\d\d-\d\dT/);
  assert.ok(lines.some((l) => l.startsWith('<6>') && l.includes('smarthost is running')), out);
  assert.ok(lines.some((l) => l.startsWith('<4>') && / WARN  no upstream is configured/.test(l)), `a warning carries priority 4:\n${out}`);
});

test('JOURNAL_STREAM naming another stream (stdout redirected away from the journal): no prefix', async () => {
  const out = await serveOutput('', 'elsewhere');
  for (const l of out.trim().split('\n')) assert.match(l, ISO_LINE);
});

test('log.format: json stays JSON for log shippers, even under the journal', async () => {
  const out = await serveOutput('log: { format: json }\n', 'stdout');
  for (const l of out.trim().split('\n')) {
    const rec = JSON.parse(l) as { level: number; msg: string };
    assert.equal(typeof rec.level, 'number');
  }
  assert.match(out, /"msg":"smarthost is running"/);
});
