// smarthost users hash / users add, run as the real CLI; the hashes are checked with the verifier.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { verifyPassword } from '../../../src/core/password.ts';
import { loadUsers } from '../../../src/inbound/auth.ts';

const CLI = path.resolve(import.meta.dirname, '../../../bin/smarthost.js');

function cli(args: string[], input?: string): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [CLI, ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, out: stdout, err: stderr });
    });
    child.stdin!.end(input ?? '');
  });
}

test('users hash prints a verifiable scrypt hash, from the argument or from stdin', async () => {
  const a = await cli(['users', 'hash', 'printer-pass']);
  assert.equal(a.code, 0, a.err);
  const hash = a.out.trim();
  assert.match(hash, /^scrypt\$/);
  assert.ok(await verifyPassword('printer-pass', hash));
  assert.ok(!(await verifyPassword('other', hash)));
  const b = await cli(['users', 'hash'], 'from-stdin\n');
  assert.equal(b.code, 0, b.err);
  assert.ok(await verifyPassword('from-stdin', b.out.trim()));
  const empty = await cli(['users', 'hash'], '\n');
  assert.equal(empty.code, 2);
});

test('users add creates the file, adds and changes users, keeps comments; the listener can load it', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'smarthost-users-'));
  try {
    const file = path.join(dir, 'users.yaml');
    writeFileSync(file, '# scanners on the 3rd floor\n');
    assert.equal((await cli(['users', 'add', file, 'scanner3'], 'first\n')).code, 0);
    assert.equal((await cli(['users', 'add', file, 'copier'], 'second\n')).code, 0);
    const changed = await cli(['users', 'add', file, 'scanner3'], 'third\n');
    assert.match(changed.out, /changed the password/);
    assert.match(readFileSync(file, 'utf8'), /# scanners on the 3rd floor/);
    const users = loadUsers(file);
    assert.deepEqual([...users.keys()].sort(), ['copier', 'scanner3']);
    assert.ok(await verifyPassword('third', users.get('scanner3')!));
    assert.ok(await verifyPassword('second', users.get('copier')!));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
