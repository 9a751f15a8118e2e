#!/usr/bin/env bash
# Runs the single executable the way the container image does (Dockerfile), without a container
# engine: meant to be started as `unshare -m --propagation private bash run-as-image.sh ROOTFS
# SPOOL ETC ARGS…` by root. The root file system (scripts/exe-rootfs.sh) is mounted read-only;
# only the two volumes are writable; /proc, a minimal /dev, /etc/hosts and /etc/resolv.conf are
# provided as a runtime provides them; the program runs as 65534:65534 with no supplementary
# groups, in the environment it was given (config from SMARTHOST_* variables). The exec chain keeps
# one pid, so the caller's child pid is the program's.
set -euo pipefail
root=$1; spool=$2; etc=$3; shift 3
mount --bind "$root" "$root"
mount -o remount,bind,ro "$root"
mount --bind "$spool" "$root/var/spool/smarthost"
mount --bind "$etc" "$root/etc/smarthost"
mount -t proc proc "$root/proc"
mount -t tmpfs -o mode=0755,size=64k tmpfs "$root/dev"
for d in null zero random urandom; do : > "$root/dev/$d"; mount --bind "/dev/$d" "$root/dev/$d"; done
mount --bind /etc/hosts "$root/etc/hosts"
mount --bind /etc/resolv.conf "$root/etc/resolv.conf"
cd "$root"
exec /usr/sbin/chroot --userspec=65534:65534 --groups=65534 "$root" /smarthost "$@"
