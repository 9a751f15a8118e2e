#!/usr/bin/env bash
# The whole test suite, on a fresh machine or an old one: installs what the tests drive
# (Debian packages, npm packages), then runs every test under test/ with Node.js 24's test runner.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use as real peers: SMTP clients (swaks, curl), Postfix's smtp-sink and
# smtp-source (bench), headless Chromium, PostgreSQL, HAProxy, nsd (DNS on loopback), pyspf.
need=()
command -v swaks >/dev/null || need+=(swaks)
# Recommends that --no-install-recommends leaves out, keyed on what the tests use: swaks --tls needs
# Net::SSLeay (the tests use --tls, AUTH PLAIN/LOGIN and plain sockets, all else swaks has built in)
perl -MNet::SSLeay -e1 2>/dev/null || need+=(libnet-ssleay-perl)
command -v curl >/dev/null || need+=(curl)
[ -x /usr/sbin/smtp-sink ] || need+=(postfix)
command -v chromium >/dev/null || need+=(chromium)
[ -d /usr/lib/postgresql ] || need+=(postgresql)
command -v haproxy >/dev/null || need+=(haproxy)
command -v nsd >/dev/null || need+=(nsd)
command -v openssl >/dev/null || need+=(openssl)
/usr/bin/python3 -c 'import spf' 2>/dev/null || need+=(python3-spf)
/usr/bin/python3 -c 'import yaml, dns' 2>/dev/null || need+=(python3-yaml python3-dnspython)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian packages: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "missing Debian packages (install them as root): ${need[*]}" >&2
  fi
fi

[ -x node_modules/.bin/node ] && [ -d node_modules/smtp-server ] || npm ci --no-audit --no-fund
NODE=node_modules/.bin/node

# Arguments pick test files (globs); default: all of them. Node's runner expands the globs.
if [ $# -gt 0 ]; then files=("$@"); else files=('test/**/*.test.ts'); fi
exec "$NODE" --test --test-concurrency=2 --test-timeout=300000 "${files[@]}"
