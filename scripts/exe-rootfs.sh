#!/usr/bin/env bash
# Assembles the root file system of the container image (Dockerfile, stage "rootfs"): the single
# executable, the shared libraries it links (glibc, libstdc++, libgcc_s: ldd), a passwd/group with
# the unprivileged user 65534 ("smarthost"), and the volume folders it may write. Nothing else: no
# shell, no Node. test/e2e/exe.test.ts runs the binary in exactly this tree (read-only, as 65534).
#
#   scripts/exe-rootfs.sh dist/exe/smarthost-linux-x64 ROOTFS_DIR
set -euo pipefail
bin=$1
root=$2
mkdir -p "$root"/{etc/smarthost,var/spool/smarthost,tmp,proc,dev,sys}
install -m 0755 "$bin" "$root/smarthost"
# every library the loader would map, at the same path, plus the loader itself
ldd "$bin" | awk '/=> \// { print $3 } /^\t\// { print $1 }' | while read -r lib; do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
printf 'root:x:0:0:root:/root:/sbin/nologin\nsmarthost:x:65534:65534:smarthost:/var/spool/smarthost:/sbin/nologin\n' > "$root/etc/passwd"
printf 'root:x:0:\nsmarthost:x:65534:\n' > "$root/etc/group"
# the container runtime mounts its own over these; they exist so that a bind mount has a target
: > "$root/etc/hosts"; : > "$root/etc/resolv.conf"; : > "$root/etc/hostname"
chown 65534:65534 "$root/etc/smarthost" "$root/var/spool/smarthost"
chmod 1777 "$root/tmp"
