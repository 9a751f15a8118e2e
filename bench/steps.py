#!/usr/bin/env python3
"""Times each reply of an SMTP session, one message per connection, N sessions one after the other.

    python3 bench/steps.py HOST PORT N SIZE

Prints msg/s and the median microseconds of each step (connect to greeting, EHLO, MAIL, RCPT,
DATA, message to its 250, QUIT). Used in docs/performance.md ("One session, step by step") to see
where a relay spends a single client's time. Loopback only; bounded by N.
"""
import socket
import statistics
import sys
import time

host, port, n, size = sys.argv[1], int(sys.argv[2]), min(int(sys.argv[3]), 100_000), int(sys.argv[4])
body = b"Subject: t\r\n\r\n" + (b"x" * 76 + b"\r\n") * max(size // 78, 1) + b".\r\n"
steps = {k: [] for k in ["connect+greeting", "EHLO", "MAIL", "RCPT", "DATA", "message+250", "QUIT"]}


def reply(f):
    while True:
        line = f.readline()
        if not line:
            raise SystemExit("connection closed by the server")
        if len(line) < 4 or line[3:4] != b"-":
            return line


start = time.perf_counter()
for _ in range(n):
    t = time.perf_counter()
    s = socket.create_connection((host, port), timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    f = s.makefile("rb")
    reply(f)
    now = time.perf_counter()
    steps["connect+greeting"].append(now - t)
    t = now
    for name, cmd in [("EHLO", b"EHLO steps.bench.test\r\n"), ("MAIL", b"MAIL FROM:<device@bench.test>\r\n"),
                      ("RCPT", b"RCPT TO:<user@example.net>\r\n"), ("DATA", b"DATA\r\n"), ("message+250", body), ("QUIT", b"QUIT\r\n")]:
        s.sendall(cmd)
        r = reply(f)
        if name != "QUIT" and r[:1] not in (b"2", b"3"):
            raise SystemExit(f"{name}: {r!r}")
        now = time.perf_counter()
        steps[name].append(now - t)
        t = now
    s.close()
elapsed = time.perf_counter() - start
print(f"{n / elapsed:.0f} msg/s; median µs per step:", " ".join(f"{k}={statistics.median(v) * 1e6:.0f}" for k, v in steps.items()))
