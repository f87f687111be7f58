#!/usr/bin/env bash
# tests/container/selftest.sh [INIT_BINARY]
#
# Proves the podman.sh harness end to end with a stand-in static init
# (default /usr/bin/tini-static, from Debian's `tini`), which takes the same
# `INIT -- CMD...` form. Prints timings, ends with "N passed, N failed".
# Exit: 0 all passed, 1 some failed, 77 podman/runc/busybox/init missing.

set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
P="$HERE/podman.sh"
INIT=${1:-/usr/bin/tini-static}
IMG=minit-test-selftest-img
POD=minit-test-selftest-pod
pass=0 fail=0

[[ -x $INIT ]] || { echo "selftest: SKIP: $INIT missing (apt-get install tini)" >&2; exit 77; }
"$P" check || exit $?

ok()  { echo "ok   - $*"; pass=$((pass + 1)); }
bad() { echo "FAIL - $*"; fail=$((fail + 1)); }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
expect() { # expect DESC WANT GOT
  if [[ $2 == "$3" ]]; then ok "$1 ($3)"; else bad "$1: want [$2] got [$3]"; fi
}

cleanup() { "$P" cleanup; }
trap cleanup EXIT
cleanup

# -- build ---------------------------------------------------------------
t0=$(now)
if MINIT_FORCE_REBUILD=1 "$P" build-image "$IMG" "$INIT" >/dev/null 2>/tmp/selftest-build.$$; then
  ok "build-image FROM scratch in $(secs "$t0" "$(now)")s"
else
  cat /tmp/selftest-build.$$ >&2; bad "build-image"
fi
rm -f /tmp/selftest-build.$$
t0=$(now); "$P" build-image "$IMG" "$INIT" >/dev/null 2>&1
ok "build-image again (cached) in $(secs "$t0" "$(now)")s"
expect "no ENTRYPOINT/CMD in image" "[] []" \
  "$("$P" podman image inspect --format '{{.Config.Entrypoint}} {{.Config.Cmd}}' "$IMG")"
out=$("$P" run --rm "$IMG" /bin/sh -c 'for a in sh sleep kill ps cat echo true false grep setsid nohup wc ls; do command -v $a >/dev/null || echo missing:$a; done; echo done')
expect "busybox applets present" "done" "$out"

# -- (a) init as PID 1, exit code passthrough ----------------------------
t0=$(now)
out=$("$P" run --rm "$IMG" /minit -- /bin/sh -c 'echo pid=$$; tr "\0" " " </proc/1/cmdline; echo; exit 3')
rc=$?
t1=$(now)
echo "     output: $(echo "$out" | tr '\n' '|')"
expect "(a) run --rm exit code" 3 "$rc"
expect "(a) /proc/1/cmdline" "/minit -- /bin/sh -c echo pid=\$\$; tr \"\\0\" \" \" </proc/1/cmdline; echo; exit 3 " \
  "$(echo "$out" | sed -n 2p)"
ok "(a) podman run --rm took $(secs "$t0" "$t1")s"

# -- (b) podman stop -----------------------------------------------------
stop_case() { # NAME WANT_EXIT MAX_SECS CMD...
  local name=$1 want=$2 max=$3; shift 3
  "$P" run -d --name "$name" "$IMG" "$@" >/dev/null || { bad "(b) run -d $name"; return; }
  sleep 1.5
  local s e code
  s=$(now); "$P" podman stop -t 10 "$name" >/dev/null 2>&1; e=$(now)
  code=$("$P" podman inspect --format '{{.State.ExitCode}}' "$name")
  "$P" podman rm "$name" >/dev/null
  local took; took=$(secs "$s" "$e")
  expect "(b) $name: exit code after podman stop -t 10 (took ${took}s)" "$want" "$code"
  if awk -v t="$took" -v m="$max" 'BEGIN { exit !(t < m) }'; then ok "(b) $name: stop took ${took}s < ${max}s"
  else bad "(b) $name: stop took ${took}s, want < ${max}s"; fi
}
stop_case minit-test-stop-trap 0 3 /minit -- /bin/sh -c 'trap "exit 0" TERM; while :; do sleep 1; done'
stop_case minit-test-stop-sleep 143 3 /minit -- /bin/sleep 1000000

# -- (c) --init --init-path ----------------------------------------------
out=$("$P" run --rm --init --init-path "$INIT" "$IMG" /bin/sh -c 'tr "\0" "|" </proc/1/cmdline; echo; exit 5')
rc=$?
expect "(c) --init-path exit code" 5 "$rc"
expect "(c) --init-path argv of PID 1" '/run/podman-init|--|/bin/sh|-c|tr "\0" "|" </proc/1/cmdline; echo; exit 5|' "$out"

# -- (d) pod with our image as infra ---------------------------------------
t0=$(now)
"$P" podman pod create --name "$POD" --label minit-test=1 \
  --infra-image "localhost/$IMG" --infra-name "$POD-infra" \
  --infra-command '/minit -- /bin/sleep 1000000' --share +pid >/dev/null \
  && ok "(d) pod create in $(secs "$t0" "$(now)")s" || bad "(d) pod create"
# (order varies from run to run)
expect "(d) shared namespaces" "ipc net pid uts" \
  "$("$P" podman pod inspect --format '{{range .SharedNamespaces}}{{println .}}{{end}}' "$POD" | sort | xargs)"
t0=$(now)
out=$("$P" run --rm --pod "$POD" "$IMG" /bin/sh -c 'tr "\0" " " </proc/1/cmdline; echo')
ok "(d) first run --pod (starts infra) in $(secs "$t0" "$(now)")s"
expect "(d) PID 1 seen from a pod member" "/minit -- /bin/sleep 1000000 " "$out"
"$P" run -d --name minit-test-selftest-app --pod "$POD" "$IMG" /bin/sh -c 'trap "exit 0" TERM; while :; do sleep 1; done' >/dev/null
sleep 1
t0=$(now)
"$P" podman pod stop -t 10 "$POD" >/dev/null && ok "(d) pod stop in $(secs "$t0" "$(now)")s" || bad "(d) pod stop"
expect "(d) infra exit code" 143 "$("$P" podman inspect --format '{{.State.ExitCode}}' "$POD-infra")"
echo "     app exit code after pod stop: $("$P" podman inspect --format '{{.State.ExitCode}}' minit-test-selftest-app) (137 = SIGKILLed when the shared PID 1 exited)"
"$P" podman pod rm -f -t 0 "$POD" >/dev/null && ok "(d) pod rm" || bad "(d) pod rm"

# -- cleanup leaves nothing ------------------------------------------------
"$P" cleanup
left=$( { "$P" podman ps -aq --filter label=minit-test=1; "$P" podman pod ps -q --filter name=^minit-test; "$P" podman images -q --filter label=minit-test=1; } | wc -l)
expect "cleanup leaves no minit-test objects" 0 "$left"

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
