#!/usr/bin/env python3
"""Test app: blocks every catchable signal, prints `ready`, then one line per signal it
receives (`sig N value V`), in arrival order, via sigwaitinfo. Exits 0 on the signal given
with --exit-on (default: TERM), or with the code given by --code."""
import os
import signal
import sys

exit_on = signal.SIGTERM
code = 0
tag = ""
args = sys.argv[1:]
while args:
    a = args.pop(0)
    if a == "--exit-on":
        exit_on = int(args.pop(0))
    elif a == "--code":
        code = int(args.pop(0))
    elif a == "--tag":
        tag = args.pop(0) + " "
sigs = [s for s in range(1, 65) if s not in (signal.SIGKILL, signal.SIGSTOP, 32, 33)]
signal.pthread_sigmask(signal.SIG_BLOCK, sigs)


def say(line):
    # One write per line: two apps sharing a pipe must not interleave within a line.
    os.write(1, (line + "\n").encode())


say(f"{tag}ready pid {os.getpid()} pgid {os.getpgrp()}")
while True:
    info = signal.sigwaitinfo(sigs)
    if info.si_signo == signal.SIGCHLD:
        continue
    say(f"{tag}sig {info.si_signo} code {info.si_code} value {info.si_status}")
    if info.si_signo == exit_on:
        sys.exit(code)
