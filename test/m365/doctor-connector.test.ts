import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { parseConfigText } from '../../src/config/load.ts';
import { checkConnectorCertificate, signInHost } from '../../src/cli/commands/doctor.ts';
import { namedCert, tempDir } from '../helpers/m365/pki.ts';

test('doctor checks a connector route\'s client certificate: its names against the domain, its key', async (t) => {
  const tmp = tempDir('sh-doctor-conn-');
  t.after(() => tmp.cleanup());
  const relay = await namedCert('relay.contoso.com');
  const other = await namedCert('other.example');
  const both = tmp.write('both.pem', relay.cert + relay.key);
  const wrongKey = tmp.write('wrong.pem', relay.cert + other.key);
  const cfg = (domain: string, file: string) => {
    const c = parseConfigText(`upstreams:\n  - { name: mx, url: "connector://${domain}", connector: { host: 127.0.0.1, clientCertificate: ${file} } }\n`, path.join(tmp.dir, 'smarthost.yaml'));
    return { c, u: c.upstreams[0] };
  };
  const ok = cfg('contoso.com', both);
  const good = checkConnectorCertificate(ok.u, ok.c, Date.now(), 'mx');
  assert.equal(good.state, 'ok', good.detail);
  assert.match(good.detail, /names relay\.contoso\.com/);
  const elsewhere = cfg('fabrikam.com', both);
  const warn = checkConnectorCertificate(elsewhere.u, elsewhere.c, Date.now(), 'mx');
  assert.equal(warn.state, 'warning');
  assert.match(warn.detail, /none in fabrikam\.com: the inbound connector must be set to a name in the certificate, and that name must be an accepted domain/);
  const bad = cfg('contoso.com', wrongKey);
  assert.equal(checkConnectorCertificate(bad.u, bad.c, Date.now(), 'mx').state, 'problem');
  const later = checkConnectorCertificate(ok.u, ok.c, Date.now() + 20 * 365 * 86_400_000, 'mx');
  assert.equal(later.state, 'problem');
  assert.match(later.detail, /expired .* 5\.7\.64/);
});

test('doctor\'s clock check asks the configured sign-in host, not always login.microsoftonline.com', () => {
  const national = parseConfigText('upstreams:\n  - { name: g, url: "graph://contoso.onmicrosoft.us/a@contoso.com", oauth: { clientId: c, clientSecret: s, authority: "https://login.microsoftonline.us" } }\n', '/tmp/d.yaml');
  assert.equal(signInHost(national), 'https://login.microsoftonline.us/');
  assert.equal(signInHost(parseConfigText('upstreams: []\n', '/tmp/d.yaml')), 'https://login.microsoftonline.com/');
});
