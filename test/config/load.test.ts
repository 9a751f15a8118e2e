import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadConfig, parseConfigText } from '../../src/config/load.ts';
import { SmarthostError } from '../../src/core/errors.ts';
import { maskSecrets } from '../../src/config/mask.ts';
import { resolveSecret } from '../../src/config/secret.ts';

test('embedded defaults are safe: loopback listener, relay for loopback only, IIS retry ladder', () => {
  const c = loadConfig();
  assert.deepEqual(c.listen.map((l) => [l.address, l.port]), [['127.0.0.1', 2525]]);
  assert.equal(c.access.relay.mode, 'only');
  assert.deepEqual(c.access.relay.list, ['127.0.0.0/8', '::1']);
  assert.deepEqual(c.delivery.retry, [15, 30, 60, 240].map((m) => m * 60_000));
  assert.equal(c.delivery.delayNotification, 12 * 3600_000);
  assert.equal(c.delivery.expiration, 2 * 86400_000);
  assert.equal(c.limits.maxMessageSize, 35 * 1024 * 1024);
  assert.ok(Object.isFrozen(c.access.relay));
});

test('a config error names the file, the line and what is expected', () => {
  const text = ['listen:', '  - port: 25', 'access:', '  relay:', '    mode: allow', ''].join('\n');
  assert.throws(() => parseConfigText(text, '/etc/smarthost.yaml'), (e: unknown) => {
    assert.ok(e instanceof SmarthostError);
    assert.equal(e.code, 'SH_CONFIG_INVALID');
    assert.equal(e.line, 5);
    assert.match(e.message, /^\/etc\/smarthost\.yaml:5:11: access\.relay\.mode: expected "only" or "all-except", got "allow"/);
    return true;
  });
});

test('unknown keys are refused with a suggestion; YAML syntax errors have a line', () => {
  assert.throws(() => parseConfigText('limits:\n  maxMesageSize: 10MB\n', 'f.yaml'), /f\.yaml:2:3: limits: unknown setting "maxMesageSize" \(did you mean "maxMessageSize"\?\)/);
  assert.throws(() => parseConfigText('listen:\n  - port: [\n', 'f.yaml'), /f\.yaml:\d+:\d+: YAML syntax/);
  assert.throws(() => parseConfigText('access:\n  relay:\n    mode: only\n    list: [10.0.0.0/33]\n', 'f.yaml'), /f\.yaml:4:12: access\.relay\.list\.0: expected an IP address or CIDR/);
  assert.throws(() => parseConfigText('upstreams:\n  - name: a\n    url: smtp://x\n  - name: a\n    url: smtp://y\n', 'f.yaml'), /f\.yaml:4:11: upstreams\.1\.name: upstream name "a" is used twice/);
});

test('units: durations and sizes in words', () => {
  const c = parseConfigText('delivery:\n  retry: [1m, 90s, 2h]\n  expiration: 3d\nlimits:\n  maxMessageSize: 512KB\n', '/x/f.yaml');
  assert.deepEqual(c.delivery.retry, [60_000, 90_000, 7_200_000]);
  assert.equal(c.delivery.expiration, 3 * 86_400_000);
  assert.equal(c.limits.maxMessageSize, 512 * 1024);
  assert.equal(c.mailrootPath, '/x/mailroot');
});

test('secrets come from the file, an environment variable or a file, and are masked when shown', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sh-cfg-'));
  writeFileSync(path.join(dir, 'pw'), 'from-file\nignored\n');
  assert.equal(resolveSecret({ file: path.join(dir, 'pw') }), 'from-file');
  assert.equal(resolveSecret({ env: 'X_PW' }, { X_PW: 'from-env' }), 'from-env');
  assert.throws(() => resolveSecret({ env: 'NOPE_PW' }, {}), /NOPE_PW is not set/);
  const c = parseConfigText('upstreams:\n  - name: o365\n    url: smtp+starttls://smtp.office365.com:587\n    username: a@b.c\n    password: hunter2\n', path.join(dir, 'c.yaml'));
  const shown = JSON.stringify(maskSecrets(c));
  assert.ok(!shown.includes('hunter2'));
  assert.ok(shown.includes('********'));
});

test('the generated sample documents every key and loads to exactly the defaults', async () => {
  const { sampleConfig } = await import('../../src/config/sample.ts');
  const text = sampleConfig();
  const fromSample = parseConfigText(text, '/x/sample.yaml');
  const defaults = parseConfigText('', '/x/empty.yaml');
  const strip = ({ source: _s, ...rest }: typeof defaults) => rest;
  assert.deepEqual(strip(fromSample), strip(defaults));
  for (const key of ['maxMessageSize', 'relayForAuthenticated', 'delayNotification', 'expiration', 'masqueradeDomain', 'adminCopy']) {
    assert.match(text, new RegExp(`# .+\\n\\s*#? ?${key}:`), `sample documents ${key}`);
  }
});
