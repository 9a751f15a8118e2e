# Test helper: applies a seccomp filter as systemd's SystemCallFilter= (with SystemCallErrorNumber=EPERM)
# and RestrictAddressFamilies= do, then executes the command.
#   seccomp-exec.py SYSCALLS_FILE FAMILIES COMMAND...
# SYSCALLS_FILE: allowed system call names (whitespace-separated); every other call gets EPERM.
# FAMILIES: comma-separated address family numbers socket() may use; others get EAFNOSUPPORT.
# Needs no_new_privs (setpriv --no-new-privs sets it).
import errno
import os
import sys

import seccomp

allowed = set(open(sys.argv[1]).read().split())
families = {int(n) for n in sys.argv[2].split(',') if n}
f = seccomp.SyscallFilter(defaction=seccomp.ERRNO(errno.EPERM))
for name in allowed - {'socket'}:
    try:
        f.add_rule(seccomp.ALLOW, name)
    except Exception:
        pass  # not a system call on this architecture
if 'socket' in allowed:
    for family in range(0, 64):
        action = seccomp.ALLOW if family in families else seccomp.ERRNO(errno.EAFNOSUPPORT)
        f.add_rule(action, 'socket', seccomp.Arg(0, seccomp.EQ, family))
f.load()
os.execv(sys.argv[3], sys.argv[3:])
