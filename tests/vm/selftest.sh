#!/usr/bin/env bash
# selftest.sh: checks run-vm.sh itself, with stand-in inits (tini-static and
# testinit/probe-init.c) instead of minit. ~40 s. Exit status: number of failures.
set -u -o pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RUN=$HERE/run-vm.sh
TINI=${TINI:-/usr/bin/tini-static}
work=$(mktemp -d "${TMPDIR:-/tmp}/vm-selftest.XXXXXX")
trap 'rm -rf "$work"' EXIT

failed=0 passed=0
pass() { echo "vm-selftest: PASS $1"; passed=$((passed + 1)); }
fail() { echo "vm-selftest: FAIL $1: $2"; failed=$((failed + 1)); }
# vm NAME RUN-VM-ARGS...: run the harness; console in $work/NAME.out, stderr
# in $work/NAME.err, status in $work/NAME.st, exit code in $rc.
vm() {
	local name=$1; shift
	"$RUN" --status-file "$work/$name.st" "$@" </dev/null >"$work/$name.out" 2>"$work/$name.err"
	rc=$?
	st=$(cat "$work/$name.st" 2>/dev/null)
}
has() { grep -qxF -- "$2" "$work/$1.out"; }                  # exact console line
show() { sed 's/^/    | /' "$work/$1.out" | tail -n 40; sed 's/^/    ! /' "$work/$1.err"; }

cc -static -O2 -o "$work/probe-init" "$HERE/testinit/probe-init.c" || { echo "vm-selftest: cannot build probe-init"; exit 1; }
[[ -x $TINI ]] || { echo "vm-selftest: $TINI missing (apt-get install tini)"; exit 1; }

# 1. demo scenario, INIT_ARGS on the kernel command line
vm demo --init "$TINI" --scenario "$HERE/scenarios/demo.sh" -- /bin/sh /scenario.sh
if [[ $rc == 0 && $st == "exit 3" ]] && has demo "cmdline: /minit /bin/sh /scenario.sh " &&
	has demo "controllers: cpuset cpu io memory hugetlb pids rdma misc" &&
	grep -q 'Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000300$' "$work/demo.out"; then
	pass "demo, argv via cmdline: exit 3 seen as exitcode=0x00000300"
else fail demo "rc=$rc st=$st"; show demo; fi

# 2. same with "--" (needs the exec shim)
vm demo2 --init "$TINI" --scenario "$HERE/scenarios/demo.sh" -- -- /bin/sh /scenario.sh
if [[ $rc == 0 && $st == "exit 3" ]] && has demo2 "cmdline: /minit -- /bin/sh /scenario.sh "; then
	pass "demo, argv via shim"
else fail demo2 "rc=$rc st=$st"; show demo2; fi

# 3. the shim hands over exact argv, the kernel's env, a pristine signal state
vm probe --init "$work/probe-init" --append "FOO=bar" -- -- exit 5 "two words" "" "a=b"
if [[ $rc == 0 && $st == "exit 5" ]] && has probe "probe: pid=1 ppid=0 argc=7" &&
	has probe "probe: argv[0]=</minit>" && has probe "probe: argv[1]=<-->" &&
	has probe "probe: argv[2]=<exit>" && has probe "probe: argv[4]=<two words>" &&
	has probe "probe: argv[5]=<>" && has probe "probe: argv[6]=<a=b>" && has probe "probe: env <FOO=bar>" &&
	has probe "probe: env <HOME=/>" && has probe "probe: env <TERM=linux>" &&
	has probe "probe: SigIgn:	0000000000000000" && has probe "probe: SigBlk:	0000000000000000" &&
	has probe "probe: fds: 0->/dev/console 1->/dev/console 2->/dev/console 3->/proc/1/fd"; then
	pass "shim: exact argv, kernel env, default signal state, fds 0-2 on the console"
else fail probe "rc=$rc st=$st"; show probe; fi

# 4. PID 1 dies by a signal
vm segv --init "$work/probe-init" -- segv
if [[ $rc == 0 && $st == "signal 11" ]] &&
	grep -q 'Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b$' "$work/segv.out" &&
	grep -q 'PID 1 was killed by signal 11 (SIGSEGV)' "$work/segv.err"; then
	pass "death by SIGSEGV seen as exitcode=0x0000000b"
else fail segv "rc=$rc st=$st"; show segv; fi

# 5. a full cgroup v2 system
vm cgroup --init "$TINI" --scenario "$HERE/scenarios/cgroup-check.sh" -- -- /bin/sh /scenario.sh
if [[ $rc == 0 && $st == "exit 0" ]] && has cgroup "cgroup-check: done, 0 bad"; then
	pass "cgroup v2: all controllers, subtree_control, memory.max/events, pids, freeze, kill, namespaces"
else fail cgroup "rc=$rc st=$st"; show cgroup; fi

# 6. poweroff from the scenario ends the run too
printf '. /prelude.sh\necho bye\npoweroff_now\n' >"$work/poweroff.sh"
vm poweroff --init "$TINI" --scenario "$work/poweroff.sh" -- -- /bin/sh /scenario.sh
if [[ $rc == 0 && $st == poweroff ]] && has poweroff bye; then pass "poweroff ends the run"
else fail poweroff "rc=$rc st=$st"; show poweroff; fi

# 7. the timeout kills a hung VM
printf '. /prelude.sh\necho hanging\nsleep 1000\n' >"$work/hang.sh"
vm hang --init "$TINI" --scenario "$work/hang.sh" --timeout 6 -- -- /bin/sh /scenario.sh
if [[ $rc == 124 && $st == timeout ]] && has hang hanging && grep -q 'TIMEOUT' "$work/hang.err"; then
	pass "timeout: exit 124"
else fail hang "rc=$rc st=$st"; show hang; fi

# 8. clear errors
"$RUN" --init /nonexistent </dev/null >/dev/null 2>"$work/err1"
e1=$?
"$RUN" --init "$TINI" --kernel /nonexistent </dev/null >/dev/null 2>"$work/err2"
e2=$?
if [[ $e1 == 125 && $e2 == 125 ]] && grep -q "not found" "$work/err1" && grep -q "kernel '/nonexistent' not found" "$work/err2"; then
	pass "missing init/kernel: exit 125 with a message"
else fail errors "e1=$e1 e2=$e2: $(cat "$work/err1" "$work/err2")"; fi

echo "vm-selftest: $passed ok, $failed not ok"
exit "$failed"
