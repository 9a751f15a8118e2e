// The config lookup order every command shares: --config, SMARTHOST_CONFIG, the system file, ./smarthost.yaml.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { findConfig, requireConfig, systemConfigFile } from '../../src/config/locate.ts';
import { SmarthostError } from '../../src/core/errors.ts';

function setup() {
  const root = mkdtempSync(path.join(tmpdir(), 'sh-locate-'));
  const etc = path.join(root, 'etc', 'smarthost', 'smarthost.yaml'); // stands in for /etc/smarthost/smarthost.yaml
  const cwd = path.join(root, 'work');
  mkdirSync(path.dirname(etc), { recursive: true });
  mkdirSync(cwd);
  return { root, etc, cwd, local: path.join(cwd, 'smarthost.yaml') };
}

test('system files: /etc/smarthost on Linux, %ProgramData%\\smarthost on Windows', () => {
  assert.equal(systemConfigFile('linux', {}), '/etc/smarthost/smarthost.yaml');
  assert.equal(systemConfigFile('win32', { ProgramData: 'D:\\Data' }), 'D:\\Data\\smarthost\\smarthost.yaml');
  assert.equal(systemConfigFile('win32', {}), 'C:\\ProgramData\\smarthost\\smarthost.yaml');
});

test('order: --config, then SMARTHOST_CONFIG, then the system file, then ./smarthost.yaml', () => {
  const { etc, cwd, local } = setup();
  writeFileSync(etc, 'mailroot: /var/spool/smarthost\n');
  writeFileSync(local, 'mailroot: ./here\n');
  const env = { SMARTHOST_CONFIG: '/srv/relay.yaml' };
  assert.deepEqual(findConfig('given.yaml', { env, cwd, systemFile: etc }), { file: 'given.yaml', via: 'option', tried: ['given.yaml'] });
  assert.equal(findConfig(undefined, { env, cwd, systemFile: etc }).file, '/srv/relay.yaml');
  assert.equal(findConfig(undefined, { env: {}, cwd, systemFile: etc }).file, etc);
  const found = findConfig(undefined, { env: { SMARTHOST_CONFIG: '' }, cwd, systemFile: path.join(cwd, 'absent.yaml') });
  assert.equal(found.file, local);
  assert.equal(found.via, 'current folder');
});

test('SMARTHOST_CONFIG naming a missing file is still taken: loading it fails loudly instead of falling through', () => {
  const { etc, cwd } = setup();
  writeFileSync(etc, '{}\n');
  assert.equal(findConfig(undefined, { env: { SMARTHOST_CONFIG: '/nowhere/x.yaml' }, cwd, systemFile: etc }).file, '/nowhere/x.yaml');
});

test('nothing found: no file, and every place looked at is named', () => {
  const { etc, cwd, local } = setup();
  const found = findConfig(undefined, { env: {}, cwd, systemFile: etc });
  assert.equal(found.file, undefined);
  assert.equal(found.via, 'none');
  assert.deepEqual(found.tried, ['SMARTHOST_CONFIG (not set)', etc, local]);
  assert.throws(() => requireConfig(undefined, { env: {}, cwd, systemFile: etc }), (e: unknown) => {
    assert.ok(e instanceof SmarthostError);
    assert.equal(e.code, 'SH_CONFIG_NOT_FOUND');
    assert.match(e.message, /no config file found/);
    assert.ok(e.message.includes(etc) && e.message.includes(local), e.message);
    return true;
  });
});

test('the Windows search uses %ProgramData%', () => {
  const seen: string[] = [];
  const found = findConfig(undefined, { platform: 'win32', env: { ProgramData: 'C:\\ProgramData' }, cwd: '/w', exists: (f) => { seen.push(f); return false; } });
  assert.equal(seen[0], 'C:\\ProgramData\\smarthost\\smarthost.yaml');
  assert.equal(found.tried[1], 'C:\\ProgramData\\smarthost\\smarthost.yaml');
});
