# Test helper: applies a seccomp allow-list (syscall names, whitespace-separated, in argv[1]) that
# answers EPERM to every other system call, as systemd's SystemCallFilter= with
# SystemCallErrorNumber=EPERM does, then executes argv[2:]. Needs no_new_privs (setpriv sets it).
import errno
import os
import sys

import seccomp

f = seccomp.SyscallFilter(defaction=seccomp.ERRNO(errno.EPERM))
for name in open(sys.argv[1]).read().split():
    try:
        f.add_rule(seccomp.ALLOW, name)
    except Exception:
        pass  # not a system call on this architecture
f.load()
os.execv(sys.argv[2], sys.argv[2:])
