#!/usr/bin/env python3
"""Test app: creates N double-forked orphans that exit at once, then waits until the number
of zombies reparented away from it reaches TARGET (`0`, or `all` = N) or 60 s pass, and
prints `zombies K`. With `all` it proves the zombie count can fail: run as PID 1 without an
init, nobody reaps the orphans."""
import os
import signal
import sys
import time

# A caller may have left SIGCHLD ignored (one test does, to check minit still reaps); this
# app waits for its own children, so it needs the default.
signal.signal(signal.SIGCHLD, signal.SIG_DFL)

n = int(sys.argv[1])
target = n if sys.argv[2] == "all" else int(sys.argv[2])
for _ in range(n):
    pid = os.fork()
    if pid == 0:
        if os.fork() == 0:
            os._exit(0)
        os._exit(0)
    os.waitpid(pid, 0)

reapers = {os.getpid(), os.getppid()}


def zombies():
    count = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                rest = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if rest[0] == b"Z" and int(rest[1]) in reapers:
            count += 1
    return count


deadline = time.monotonic() + 60
count = zombies()
while count != target and time.monotonic() < deadline:
    time.sleep(0.05)
    count = zombies()
print(f"zombies {count}", flush=True)
