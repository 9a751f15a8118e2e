#!/usr/bin/env bash
# Runs a container image's root file system the way a container runtime does, without one: meant
# to be started by root as
#   unshare -m --propagation private bash run-as-image.sh ROOTFS SPOOL ETC UID:GID WORKDIR PROGRAM ARGS…
# The root file system is mounted read-only; only the two volumes (/var/spool/smarthost and
# /etc/smarthost) are writable; /proc, a minimal /dev, /etc/hosts and /etc/resolv.conf are provided
# as a runtime provides them; the program runs as UID:GID with no supplementary groups, in WORKDIR,
# in the environment it was given. The exec chain keeps one pid: the caller's child is the program.
set -euo pipefail
root=$1; spool=$2; etc=$3; user=$4; wd=$5; shift 5
mount --bind "$root" "$root"
mount -o remount,bind,ro "$root"
mount --bind "$spool" "$root/var/spool/smarthost"
mount --bind "$etc" "$root/etc/smarthost"
mount -t proc proc "$root/proc"
mount -t tmpfs -o mode=0755,size=64k tmpfs "$root/dev"
for d in null zero random urandom; do : > "$root/dev/$d"; mount --bind "/dev/$d" "$root/dev/$d"; done
mount --bind /etc/hosts "$root/etc/hosts"
mount --bind /etc/resolv.conf "$root/etc/resolv.conf"
exec /usr/bin/nsenter --root="$root" --wd="$root$wd" --setuid "${user%%:*}" --setgid "${user##*:}" "$@"
