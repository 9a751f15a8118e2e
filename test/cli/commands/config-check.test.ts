// `smarthost config check` refuses everything `smarthost serve` refuses at start, in the same words
// (src/cli/compose/preflight.ts): each refusal is run through both commands as child processes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runCli } from '../../helpers/cli.ts';

let dir: string;
before(() => { dir = mkdtempSync(path.join(tmpdir(), 'config-check-')); });
after(() => rmSync(dir, { recursive: true, force: true }));

function write(name: string, yaml: string): string {
  const file = path.join(dir, name);
  // the listener is never opened: the refusal comes first (a serve that started would be killed at 30 s and fail the test)
  writeFileSync(file, `mailroot: ./mailroot-${name}\n${yaml.includes('listen:') ? '' : 'listen: [{ address: 127.0.0.1, port: 2 }]\n'}${yaml}`);
  return file;
}

const CASES: Array<{ name: string; yaml: string; says: RegExp }> = [
  { name: 'env-secret', yaml: 'web: { enabled: false }\nupstreams:\n  - { name: isp, url: "smtp+starttls://smtp.example.test", username: u, password: { env: SMARTHOST_TEST_NEVER_SET } }\n', says: /upstream isp: password: environment variable SMARTHOST_TEST_NEVER_SET is not set/ },
  { name: 'plain-admin-password', yaml: 'web: { adminPassword: hunter2 }\n', says: /web\.adminPassword must be a scrypt hash/ },
  { name: 'open-console', yaml: 'web: { address: 0.0.0.0 }\n', says: /the console would listen on 0\.0\.0\.0, which is not a loopback address, but web\.adminPassword is not set/ },
  { name: 'missing-cert', yaml: 'web: { enabled: false }\ntls: { cert: nowhere.crt, key: nowhere.key }\nlisten: [{ address: 127.0.0.1, port: 2, tls: starttls }]\n', says: /nowhere\.crt: the TLS certificate could not be read/ },
  { name: 'missing-users', yaml: 'web: { enabled: false }\nauth: { enabled: true, usersFile: no-users.yaml }\n', says: /no-users\.yaml: the users file could not be read/ },
  { name: 'missing-ca', yaml: 'web: { enabled: false }\nupstreams:\n  - { name: isp, url: "smtp://smtp.example.test", ca: no-ca.pem }\n', says: /upstream isp: ca: cannot read \/.*\/no-ca\.pem \(ENOENT\)/ },
  { name: 'postgres-no-url', yaml: 'web: { enabled: false }\nhistory: { store: postgres }\n', says: /history\.store is postgres but history\.postgresUrl is not set/ },
  { name: 'admin-copy-ignored', yaml: 'web: { enabled: false }\nndr: { to: sender, adminCopy: pm@example.test }\n', says: /ndr\.adminCopy is set but ndr\.to is "sender", so no copy would be sent/ },
];

for (const c of CASES) {
  test(`refused by config check and by serve, in the same words: ${c.name}`, { timeout: 60_000 }, async () => {
    const file = write(`${c.name}.yaml`, c.yaml);
    const check = await runCli(['config', 'check', file]);
    assert.equal(check.code, 2, `config check must refuse: ${check.stdout}${check.stderr}`);
    assert.match(check.stderr, c.says);
    assert.doesNotMatch(check.stdout, /OK/);
    const serve = await runCli(['serve', '--config', file]);
    assert.equal(serve.code, 2, `serve must refuse: ${serve.stdout}${serve.stderr}`);
    assert.equal(serve.stderr, check.stderr, 'the same message');
    assert.ok(!existsSync(path.join(dir, `mailroot-${c.name}.yaml`)), 'serve refused before creating anything');
  });
}

test('every refusal at once, one per line; a config that starts checks OK', { timeout: 60_000 }, async () => {
  const file = write('many.yaml', 'web: { address: 0.0.0.0 }\nupstreams:\n  - { name: isp, url: "smtp://smtp.example.test", username: u, password: { file: /nonexistent/secret } }\n');
  const check = await runCli(['config', 'check', file]);
  assert.equal(check.code, 2);
  const lines = check.stderr.trim().split('\n');
  assert.equal(lines.length, 2, check.stderr);
  assert.match(lines[0], new RegExp(`^smarthost: ${file.replace(/[.]/g, '\\.')}: the console would listen on 0\\.0\\.0\\.0`));
  assert.match(lines[1], /upstream isp: password: cannot read secret file \/nonexistent\/secret/);
  const good = write('good.yaml', 'web: { enabled: false }\nupstreams:\n  - { name: isp, url: "smtp://smtp.example.test", username: u, password: { env: HOME } }\n');
  const ok = await runCli(['config', 'check', good]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /good\.yaml: OK/);
});
