// SMARTHOST_* environment variables (src/config/env.ts): they replace the keys they name, the file
// keeps the rest, secrets stay references, and a malformed variable is refused by name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ENV_SETTINGS, applyEnvOverrides } from '../../src/config/env.ts';
import { checkConfigText } from '../../src/config/load.ts';

test('no variables: the data is unchanged', () => {
  const data = { listen: [{ address: '127.0.0.1', port: 2525 }], upstreams: [{ name: 'a', url: 'smtp://x:25' }] };
  assert.deepEqual(applyEnvOverrides(data, {}), { data, applied: [] });
});

test('the environment wins over the file for the keys it names; the file keeps the others', () => {
  const file = {
    hostname: 'file.example', mailroot: '/file/mailroot',
    listen: [{ address: '127.0.0.1', port: 2525 }],
    access: { relay: { mode: 'all-except', list: ['10.0.0.9'] }, relayForAuthenticated: false },
    upstreams: [{ name: 'a', url: 'smtp://a:25' }, { name: 'b', url: 'smtp://b:25' }],
    web: { port: 9000 },
  };
  const { data, applied } = applyEnvOverrides(file, {
    SMARTHOST_LISTEN: '0.0.0.0:25, [::]:587/starttls',
    SMARTHOST_MAILROOT: '/var/spool/smarthost',
    SMARTHOST_RELAY_LIST: '192.168.1.50,192.168.1.0/24',
    SMARTHOST_UPSTREAM_URL: 'smtp+starttls://smtp.office365.com:587',
    SMARTHOST_UPSTREAM_USERNAME: 'scanner@contoso.com',
    SMARTHOST_UPSTREAM_PASSWORD: 'hunter2',
    SMARTHOST_WEB_LISTEN: '0.0.0.0:8025',
    SMARTHOST_HISTORY_POSTGRES_URL: 'postgres://u:p@db/smarthost',
  });
  assert.equal(data.hostname, 'file.example');
  assert.equal(data.mailroot, '/var/spool/smarthost');
  assert.deepEqual(data.listen, [{ address: '0.0.0.0', port: 25 }, { address: '::', port: 587, tls: 'starttls' }]);
  assert.deepEqual(data.access, { relay: { mode: 'only', list: ['192.168.1.50', '192.168.1.0/24'] }, relayForAuthenticated: false });
  // the password is not copied into the config: config show / the console print references only
  assert.deepEqual(data.upstreams, [{ name: 'upstream', url: 'smtp+starttls://smtp.office365.com:587', username: 'scanner@contoso.com', password: { env: 'SMARTHOST_UPSTREAM_PASSWORD' } }]);
  assert.deepEqual(data.web, { port: 8025, enabled: true, address: '0.0.0.0' });
  assert.deepEqual(data.history, { store: 'postgres', postgresUrl: { env: 'SMARTHOST_HISTORY_POSTGRES_URL' } });
  assert.equal(applied.length, 8);
  assert.equal(JSON.stringify(data).includes('hunter2'), false);
});

test('credentials alone apply to the single upstream of the file, and are refused with several', () => {
  const one = applyEnvOverrides({ upstreams: [{ name: 'o365', url: 'smtp+starttls://smtp.office365.com:587' }] }, { SMARTHOST_UPSTREAM_PASSWORD_FILE: '/run/secrets/o365' });
  assert.deepEqual(one.data.upstreams, [{ name: 'o365', url: 'smtp+starttls://smtp.office365.com:587', password: { file: '/run/secrets/o365' } }]);
  assert.throws(() => applyEnvOverrides({ upstreams: [{ name: 'a', url: 'smtp://a' }, { name: 'b', url: 'smtp://b' }] }, { SMARTHOST_UPSTREAM_USERNAME: 'x' }), /SMARTHOST_UPSTREAM_USERNAME .*several upstreams/);
  assert.throws(() => applyEnvOverrides({}, { SMARTHOST_UPSTREAM_USERNAME: 'x' }), /set SMARTHOST_UPSTREAM_URL too/);
});

test('a malformed variable is refused by name, with what was expected', () => {
  for (const [name, value] of [['SMARTHOST_LISTEN', '0.0.0.0'], ['SMARTHOST_LISTEN', 'mail.example:25'], ['SMARTHOST_LISTEN', '0.0.0.0:70000'], ['SMARTHOST_WEB_LISTEN', '0.0.0.0:8025/none']]) {
    assert.throws(() => applyEnvOverrides({}, { [name]: value }), (e: Error) => e.message.includes(`environment variable ${name}: expected ADDRESS:PORT`) && e.message.includes(`got "${value}"`));
  }
});

test('config check applies the environment over the file, and reports a bad variable as a problem', () => {
  const saved = { ...process.env };
  try {
    process.env.SMARTHOST_LISTEN = '127.0.0.1:2526';
    const ok = checkConfigText('listen:\n  - { address: 127.0.0.1, port: 2525 }\n', '/tmp/x.yaml');
    assert.deepEqual(ok.errors, []);
    assert.equal(ok.value!.listen[0].port, 2526);
    process.env.SMARTHOST_LISTEN = 'everywhere';
    const bad = checkConfigText('{}', '/tmp/x.yaml');
    assert.match(bad.errors[0].message, /environment variable SMARTHOST_LISTEN/);
  } finally {
    process.env = saved;
  }
});

test('the Dockerfile\'s and docker-compose.yml\'s variables make a valid config', async () => {
  const { readFileSync } = await import('node:fs');
  const YAML = await import('yaml');
  const root = new URL('../../', import.meta.url);
  // the ENV instruction (continued lines joined), not the usage comments
  const dockerfile = readFileSync(new URL('Dockerfile', root), 'utf8').split('\n').filter((l) => !l.startsWith('#')).join('\n').replace(/\\\n/g, ' ');
  const envLine = /^ENV (.*)$/m.exec(dockerfile)![1];
  const image = Object.fromEntries([...envLine.matchAll(/\b(SMARTHOST_[A-Z_]+)=(\S+)/g)].map((m) => [m[1], m[2]]));
  assert.deepEqual(Object.keys(image).sort(), ['SMARTHOST_LISTEN', 'SMARTHOST_MAILROOT', 'SMARTHOST_WEB_LISTEN']);
  const compose = YAML.parse(readFileSync(new URL('docker-compose.yml', root), 'utf8')) as { services: { smarthost: { environment: Record<string, string> } } };
  // compose fills ${VAR:?…} from .env; a hash as `smarthost users hash` makes it
  const env = Object.fromEntries(Object.entries({ ...image, ...compose.services.smarthost.environment }).map(([k, v]) => [k, String(v).replace(/\$\{[^}]+\}/g, k === 'SMARTHOST_WEB_PASSWORD_HASH' ? 'scrypt$16384$8$1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g=' : 'secret')]));
  for (const name of Object.keys(env)) assert.ok(name in ENV_SETTINGS, `${name} is not a variable smarthost reads`);
  const saved = { ...process.env };
  try {
    Object.assign(process.env, env);
    const checked = checkConfigText('{}', '/etc/smarthost/smarthost.yaml');
    assert.deepEqual(checked.errors, []);
    const c = checked.value!;
    assert.deepEqual(c.listen.map((l) => `${l.address}:${l.port}`), ['0.0.0.0:2525']);
    assert.deepEqual(c.access.relay.list, ['192.168.1.0/24']);
    assert.equal(c.upstreams[0].url, 'smtp+starttls://smtp.office365.com:587');
    assert.deepEqual(c.upstreams[0].password, { file: '/run/secrets/o365_password' });
    assert.equal(c.history.store, 'postgres');
    assert.equal(`${c.web.address}:${c.web.port}`, '0.0.0.0:8025');
  } finally {
    process.env = saved;
  }
});
