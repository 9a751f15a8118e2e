// Secrets never leave: known secrets are configured (upstream password, Microsoft 365 client secret,
// a PostgreSQL URL's password, a delegated sign-in's refresh token, the console password and its
// hash), the relay is driven through its failure paths (credentials refused upstream, a 5xx with
// its NDR and badmail .BAD/.BDR, a console login refused) and every CLI command is run; then every
// output, log, console API response, NDR and file under the mailroot is searched for them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { hashPassword } from '../../src/core/password.ts';
import { runCli } from '../helpers/cli.ts';
import { freePort, startRelay, type RelayProcess } from '../helpers/relay.ts';
import { startUpstream, type Upstream } from '../helpers/upstream.ts';

const SECRETS = {
  upstreamPassword: 'UpstreamPass-Q7w2e9',
  wrongPassword: 'WrongPass-Z4x8c1',
  clientSecret: 'ClientSecret~Kp3nV8mR5tY2',
  postgresPassword: 'PgPass-H6j1k3',
  refreshToken: 'RefreshToken-0.AbCdEf123456',
  consolePassword: 'ConsolePass-L5m7n2',
};
let consoleHash = '';

function leaks(text: string, where: string): string[] {
  const found: string[] = [];
  for (const [name, value] of [...Object.entries(SECRETS), ['consoleHash', consoleHash]]) {
    // the hash's salt and digest parts too, not only the whole string
    // and as AUTH sends a password: base64 alone (LOGIN) or in a PLAIN blob
    const needles = name === 'consoleHash'
      ? [value, ...value.split('$').filter((p) => p.length >= 16)]
      : [value, Buffer.from(value).toString('base64'), Buffer.from(`\0relay@example.org\0${value}`).toString('base64')];
    for (const n of needles) if (n && text.includes(n)) found.push(`${name} in ${where}`);
  }
  return found;
}

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) out.push(...filesUnder(p));
    else out.push(p);
  }
  return out;
}

function swaks(port: number, to: string): Promise<string> {
  return new Promise((resolve) => {
    execFile('swaks', ['--server', `127.0.0.1:${port}`, '--from', 'scanner@example.org', '--to', to, '--h-Subject', 'secrets test'], { timeout: 30_000 }, (_e, out, err) => resolve(`${out}${err}`));
  });
}

async function waitFor(what: string, check: () => boolean, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('no secret appears in any output, log, console response, NDR, badmail file or spool file', { timeout: 240_000 }, async (t) => {
  consoleHash = await hashPassword(SECRETS.consolePassword);
  const dir = mkdtempSync(path.join(tmpdir(), 'sh-secrets-'));
  const outputs: Array<[string, string]> = [];
  let upstream: Upstream | undefined;
  let relay: RelayProcess | undefined;
  try {
    upstream = await startUpstream({
      auth: { user: 'relay@example.org', pass: SECRETS.upstreamPassword },
      onRcpt: (a) => (a.startsWith('bounce') ? { code: 550, message: '5.1.1 no such user here' } : undefined),
    });
    mkdirSync(path.join(dir, 'mailroot', 'm365'), { recursive: true });
    writeFileSync(path.join(dir, 'mailroot', 'm365', 'delegated.tokens.json'), JSON.stringify({ refresh_token: SECRETS.refreshToken }), { mode: 0o600 });
    const webPort = await freePort();
    const yaml = (password: string) => [
      'access:',
      '  relay:',
      '    mode: only',
      '    list: [127.0.0.1]',
      'upstreams:',
      `  - name: main`,
      `    url: smtp://127.0.0.1:${upstream!.port}`,
      '    username: relay@example.org',
      `    password: ${password}`,
      '  - name: m365',
      '    url: graph://contoso.onmicrosoft.com/scanner@contoso.com',
      '    oauth:',
      '      tenant: contoso.onmicrosoft.com',
      '      clientId: 11111111-2222-3333-4444-555555555555',
      `      clientSecret: ${SECRETS.clientSecret}`,
      '  - name: delegated',
      '    url: graph://contoso.onmicrosoft.com/printer@contoso.com',
      '    oauth:',
      '      mode: delegated',
      '      tenant: contoso.onmicrosoft.com',
      '      clientId: 11111111-2222-3333-4444-555555555555',
      `      tokenCache: ${path.join(dir, 'mailroot', 'm365', 'delegated.tokens.json')}`,
      'web:',
      '  address: 127.0.0.1',
      `  port: ${webPort}`,
      `  adminPassword: "${consoleHash}"`,
      'history:',
      '  store: sqlite',
      `  postgresUrl: postgres://smarthost:${SECRETS.postgresPassword}@127.0.0.1:1/smarthost`,
      'ndr:',
      '  to: sender',
      '',
    ].join('\n');

    // 1. A relay with the right upstream password: one message delivered, one refused (5xx → .BAD, .BDR, NDR).
    relay = await startRelay(yaml(SECRETS.upstreamPassword), { dir, waitFor: [webPort] });
    outputs.push(['swaks (delivered)', await swaks(relay.port, 'someone@example.org')]);
    outputs.push(['swaks (refused upstream)', await swaks(relay.port, 'bounce@example.org')]);
    await upstream.waitFor(2); // the delivered message and the NDR
    await waitFor('badmail', () => readdirSync(path.join(relay!.mailroot, 'badmail')).some((n) => n.endsWith('.BDR')));
    for (const m of upstream.messages) outputs.push([`upstream received (to ${m.recipients.join(',')})`, m.raw.toString('latin1')]);

    // 2. The console: a refused login, then every read-only API as a signed-in admin.
    const base = `http://127.0.0.1:${webPort}`;
    const refused = await fetch(`${base}/api/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user: 'admin', password: SECRETS.wrongPassword }) });
    outputs.push(['console login refused', `${refused.status} ${await refused.text()}`]);
    const login = await fetch(`${base}/api/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user: 'admin', password: SECRETS.consolePassword }) });
    assert.equal(login.status, 200, 'the console login itself works (else the API checks prove nothing)');
    const cookie = login.headers.get('set-cookie')!.split(';')[0];
    outputs.push(['console login', await login.text()]);
    const badmailName = readdirSync(path.join(relay.mailroot, 'badmail')).find((n) => n.endsWith('.BAD'))!.replace(/\.BAD$/, '');
    for (const api of ['/api/session', '/api/config', '/api/dashboard', '/api/upstreams', '/api/queue', '/api/badmail', `/api/badmail/${badmailName}`, `/api/badmail/${badmailName}/download`, '/api/history', '/metrics', '/']) {
      const r = await fetch(`${base}${api}`, { headers: { cookie } });
      const text = await r.text();
      if (api === '/api/config') assert.equal(r.status, 200, text);
      outputs.push([`console GET ${api} (${r.status})`, text]);
    }
    await relay.stop();
    outputs.push(['serve log (right password)', relay.output()]);

    // 3. The same relay with a wrong upstream password: the credentials are refused upstream.
    relay = await startRelay(yaml(SECRETS.wrongPassword), { dir, waitFor: [webPort] });
    outputs.push(['swaks (auth refused upstream)', await swaks(relay.port, 'someone@example.org')]);
    await waitFor('the refusal in the log', () => /refused our credentials|535/.test(relay!.output()));
    const configFile = relay.configFile;

    // 4. Every CLI command that reads the config, against this one.
    const commands: string[][] = [
      ['config', 'show', configFile],
      ['config', 'check', configFile],
      ['queue', 'list', '--config', configFile],
      ['doctor', '--config', configFile],
      ['send', '--config', configFile, '--from', 'scanner@example.org', '--to', 'someone@example.org', '--trace'],
      ['send', '--config', configFile, '--upstream', 'main', '--from', 'scanner@example.org', '--to', 'someone@example.org', '--trace'],
      ['send', '--config', configFile, '--upstream', 'm365', '--from', 'scanner@contoso.com', '--to', 'someone@example.org'],
      ['m365', 'token', '--config', configFile, '--upstream', 'm365'],
      ['m365', 'token', '--config', configFile, '--upstream', 'delegated'],
      ['users', 'hash', SECRETS.consolePassword],
    ];
    const listed = await runCli(['queue', 'list', '--config', configFile]);
    const queuedId = /\d{8}T\d{6}Z-[0-9a-f]{10}-\d{4}/.exec(listed.stdout)?.[0];
    assert.ok(queuedId, `the message refused for its credentials is queued: ${listed.stdout}${listed.stderr}`);
    commands.push(['queue', 'show', queuedId, '--config', configFile]);
    for (const args of commands) {
      const r = await runCli(args);
      if (args[0] === 'users') {
        // prints a fresh hash of the password given: the password itself must not be echoed
        assert.ok(!r.stdout.includes(SECRETS.consolePassword) && !r.stderr.includes(SECRETS.consolePassword), 'users hash echoed the password');
        continue;
      }
      outputs.push([`smarthost ${args.join(' ')} (exit ${r.code})`, `${r.stdout}${r.stderr}`]);
    }
    await relay.stop();
    outputs.push(['serve log (wrong password)', relay.output()]);

    // 5. Every file the relay wrote under the mailroot (spool, badmail, history database, logs), except the token cache the test wrote.
    for (const f of filesUnder(relay.mailroot)) {
      if (f.endsWith('delegated.tokens.json')) continue;
      outputs.push([`file ${path.relative(relay.mailroot, f)}`, readFileSync(f).toString('latin1')]);
    }
    assert.ok(outputs.some(([w]) => w.startsWith('file badmail/') && w.endsWith('.BDR')), 'a .BDR was written and searched');
    assert.ok(outputs.some(([, text]) => /Delivery Status Notification|undeliverable|could not be delivered/i.test(text)), 'an NDR was sent and searched');
    assert.ok(outputs.some(([w, text]) => w.startsWith('smarthost config show') && text.includes('********')), 'config show masks (and ran)');
    // The search finds them where they are (the config file itself), so its silence below means something.
    assert.ok(leaks(readFileSync(configFile, 'utf8'), 'config').length >= 4);
    const found = outputs.flatMap(([where, text]) => leaks(text, where));
    t.diagnostic(`${outputs.length} outputs searched, ${outputs.reduce((n, [, x]) => n + x.length, 0)} characters: ${outputs.map(([w]) => w).join('; ')}`);
    assert.deepEqual(found, []);
  } finally {
    await relay?.kill();
    await upstream?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
