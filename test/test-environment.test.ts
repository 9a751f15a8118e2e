// The tests' own peers are complete: what scripts/test.sh installs must give every feature the tests
// use. swaks speaks TLS only with Net::SSLeay, a Recommends that `--no-install-recommends` leaves out:
// on a fresh machine the STARTTLS tests failed while an old machine stayed green.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

test('swaks has the features the tests use (TLS, AUTH PLAIN/LOGIN), and scripts/test.sh installs what TLS needs', () => {
  const support = execFileSync('swaks', ['--support'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  assert.match(support, /=== TLS supported/, 'swaks --tls needs libnet-ssleay-perl');
  assert.match(support, /=== Basic AUTH supported/);
  const script = readFileSync('scripts/test.sh', 'utf8');
  assert.match(script, /perl -MNet::SSLeay -e1 [^\n]*\|\| need\+=\(libnet-ssleay-perl\)/, 'keyed on the module itself, not on swaks being present');
});
