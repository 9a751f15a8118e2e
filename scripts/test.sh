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
# Net::SSLeay and IO::Socket::SSL (the tests use --tls, AUTH PLAIN/LOGIN and plain sockets, all else
# swaks has built in)
perl -MNet::SSLeay -MIO::Socket::SSL -e1 2>/dev/null || need+=(libnet-ssleay-perl libio-socket-ssl-perl)
command -v curl >/dev/null || need+=(curl)
[ -x /usr/sbin/smtp-sink ] || need+=(postfix)
command -v chromium >/dev/null || need+=(chromium)
[ -d /usr/lib/postgresql ] || need+=(postgresql)
command -v haproxy >/dev/null || need+=(haproxy)
command -v nsd >/dev/null || need+=(nsd)
command -v openssl >/dev/null || need+=(openssl)
command -v ip >/dev/null || need+=(iproute2)
/usr/bin/python3 -c 'import spf' 2>/dev/null || need+=(python3-spf)
command -v systemd-analyze >/dev/null || need+=(systemd)   # service unit verify + security score
command -v setpriv >/dev/null || need+=(util-linux)        # service capability test
/usr/bin/python3 -c 'import seccomp' 2>/dev/null || need+=(python3-seccomp)  # the unit's SystemCallFilter, applied in a test
[ -x /usr/lib/wine/wine64 ] || need+=(wine wine64)         # the spool under Windows' node.exe
/usr/bin/python3 -c 'import yaml, dns' 2>/dev/null || need+=(python3-yaml python3-dnspython)
# Old-device clients (test/e2e/devices.test.ts): Mono's System.Net.Mail.SmtpClient (mcs + runtime +
# System.dll) and msmtp (GnuTLS).
command -v mcs >/dev/null || need+=(mono-mcs)
command -v mono >/dev/null || need+=(mono-runtime)
[ -f /usr/lib/mono/4.5/System.dll ] || need+=(libmono-system4.0-cil)
command -v msmtp >/dev/null || need+=(msmtp)
# single executables (test/e2e/exe.test.ts): strip for both Linux targets, file, qemu-user with
# the arm64 libraries to run the arm64 binary, wine to run the Windows one, buildah to build
# the container image FROM scratch offline
command -v strip >/dev/null || need+=(binutils)
command -v file >/dev/null || need+=(file)
command -v aarch64-linux-gnu-strip >/dev/null || need+=(binutils-aarch64-linux-gnu)
[ -x /usr/bin/qemu-aarch64-static ] || need+=(qemu-user-static)
[ -f /usr/aarch64-linux-gnu/lib/libstdc++.so.6 ] || need+=(libc6-arm64-cross libstdc++6-arm64-cross libgcc-s1-arm64-cross)
[ -x /usr/bin/buildah ] || need+=(buildah)
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

[ -x node_modules/.bin/node ] && [ node_modules/.package-lock.json -nt package-lock.json ] || npm ci --no-audit --no-fund
NODE=node_modules/.bin/node

# Arguments pick test files (globs); default: all of them. Node's runner expands the globs.
if [ $# -gt 0 ]; then files=("$@"); else files=('test/**/*.test.ts'); fi
exec "$NODE" --test --test-concurrency=2 --test-timeout=300000 "${files[@]}"
